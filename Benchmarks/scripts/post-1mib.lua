wrk.method = "POST"
wrk.body = string.rep("a", 1048576)
wrk.headers["Content-Type"] = "application/octet-stream"
