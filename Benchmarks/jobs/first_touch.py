#!/usr/bin/env python3
"""How much a page of fresh memory costs on this machine the first time it is written.

Maps N MiB of anonymous memory, writes one byte per 4 KiB page, and prints the rate; repeated,
so the first pass (pages the kernel may have to get back from the hypervisor) can be compared
with later ones (pages just freed by the previous pass). In a VM whose balloon driver reports
free pages to the host (free page reporting: /sys/module/page_reporting), every job pays the
slow rate for the memory it allocates fresh; on a machine whose memory is fully backed
(EC2, a Nitro Enclave's reserved memory) the fast one.

    python3 Benchmarks/jobs/first_touch.py [--mib 1024] [--passes 3] [--pause 0]
"""
import argparse
import mmap
import os
import time


def touch(mib):
    size = mib << 20
    region = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    start = time.perf_counter()
    for offset in range(0, size, 4096):
        region[offset] = 1
    seconds = time.perf_counter() - start
    region.close()
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--pause", type=float, default=0, help="seconds between passes")
    args = parser.parse_args()
    reporting = "/sys/module/page_reporting/parameters/page_reporting_order"
    if os.path.exists(reporting):
        with open(reporting) as f:
            order = int(f.read())
        print(f"free page reporting is on (order {order}: blocks of {4 << order} KiB)")
    for n in range(args.passes):
        if n and args.pause:
            time.sleep(args.pause)
        seconds = touch(args.mib)
        print(f"pass {n + 1}: {args.mib} MiB touched in {seconds:.3f} s = {args.mib / 1024 / seconds:.2f} GiB/s")


if __name__ == "__main__":
    main()
