/// HTTP/1.1 over POSIX sockets with epoll event loops; see DESIGN §6.
public enum HTTPServerModule {}
