wrk.method = "POST"
wrk.body = string.rep("a", 100)
wrk.headers["Content-Type"] = "application/octet-stream"
