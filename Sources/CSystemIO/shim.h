// Linux I/O headers and calls that Swift's Glibc module does not import: epoll and eventfd, for
// the HTTP server's event loops; memfd_create, for the sealed copy of the enclave binary; closing
// every inherited descriptor in a spawned child.
#ifndef CSYSTEMIO_SHIM_H
#define CSYSTEMIO_SHIM_H

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <spawn.h>
#include <unistd.h>

// accept4(2) is declared only under _GNU_SOURCE; call it through syscall(2).
static inline int csystemio_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    return (int)syscall(SYS_accept4, fd, addr, len, flags);
}

// memfd_create(2) is declared only under _GNU_SOURCE; call it through syscall(2).
static inline int csystemio_memfd_create(const char *name, unsigned int flags) {
    return (int)syscall(SYS_memfd_create, name, flags);
}

// posix_spawn_file_actions_addclosefrom_np (glibc 2.34) is declared only under _GNU_SOURCE.
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *, int);
static inline int csystemio_spawn_closefrom(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

#endif
