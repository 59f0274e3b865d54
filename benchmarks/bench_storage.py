"""Storage backends' copy throughput against the standard tools, in the same run.

**Local**: :meth:`LocalStorage.put` (one-pass adler32 of the source on a helper thread, the
written file read back and summed again while it is fsynced, fsync of the directory, no-replace
publish) against

* ``cp`` (flatters nobody but put: it neither checksums nor syncs);
* ``cp`` then ``sync FILE`` (the same durability put pays for);
* ``cp`` then a separate adler32 pass (the project's: ISA-L's, 8 MiB reads into one buffer);
* ``cp``, adler32 pass, ``sync FILE``: everything put does, done the simple way: the fair
  baseline of the target (issue 22: put <= 1.3 x the same work; put also reads back and
  sums the written copy, which this baseline does not).

**XRootD**: :meth:`XRootDStorage.put` (pipelined writes, server-side adler32 query, temporary
name + mv) against ``xrdcp --cksum adler32`` (end-to-end verified: the fair baseline; issue
target: put faster), plain ``xrdcp`` and ``xrdcp --cksum adler32:source`` (source checksum
only), to the same local ``xrootd`` server (tests/servers/xrootd.py, stopped by PID at the end).

Source files are random bytes, in the page cache (as a file the DAQ just closed).  Every method
copies every file once per round; rounds alternate the order of the methods; ``sync`` runs,
untimed, before each timed copy so that nobody pays for the previous one's dirty pages.
The best round of each method is printed, then the ratios.  Everything is deleted at the end.

    .venv/bin/python benchmarks/bench_storage.py [--size-mb 1024] [--files 2] [--rounds 3]
        [--dir DIR] [--skip-xrootd] [--skip-local]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from farmtools.storage import LocalStorage, XRootDStorage
from farmtools.storage.checksum import adler32_file

Method = Callable[[Path, int], None]  # (source, round) -> copies the source once


def make_files(d: Path, n: int, size: int) -> list[Path]:
    block = os.urandom(16 << 20)
    out = []
    for i in range(n):
        p = d / f"run{1014 + i}-seq0.dat"
        with open(p, "wb") as f:
            left = size
            while left:
                k = min(left, len(block))
                f.write(block[:k] if i % 2 == 0 else block[::-1][:k])
                left -= k
        out.append(p)
    subprocess.run(["sync"], check=True)
    return out


def fsync_path(p: Path) -> None:
    subprocess.run(["sync", str(p)], check=True)  # coreutils: fsync of that file


def time_method(method: Method, files: list[Path], rnd: int) -> float:
    total = 0.0
    for src in files:
        subprocess.run(["sync"], check=True)  # untimed: other writes drained first
        t = time.perf_counter()
        method(src, rnd)
        total += time.perf_counter() - t
    return total


def run(
    methods: dict[str, Method], files: list[Path], rounds: int, after: Callable[[], None]
) -> dict[str, float]:
    """Best time of each method; ``after`` (untimed) checks and deletes the copies made."""
    best = dict.fromkeys(methods, float("inf"))
    names = list(methods)
    for rnd in range(rounds):
        order = names if rnd % 2 == 0 else names[::-1]
        for name in order:
            best[name] = min(best[name], time_method(methods[name], files, rnd))
            after()
    return best


def report(title: str, best: dict[str, float], nbytes: int, ours: str) -> None:
    print(f"\n{title}")
    for name, t in best.items():
        print(f"  {name:<34} {t:8.3f} s  {nbytes / t / 1e6:8.1f} MB/s")
    for name, t in best.items():
        if name != ours:
            print(f"  ratio {ours} / {name:<30} {best[ours] / t:6.3f}")


def local_bench(files: list[Path], work: Path, rounds: int) -> dict[str, float]:
    out = work / "local"

    def fresh(rnd: int, tag: str) -> Path:
        d = out / f"{tag}{rnd}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def cp(src: Path, rnd: int) -> Path:
        dest = fresh(rnd, "cp") / src.name
        subprocess.run(["cp", str(src), str(dest)], check=True)
        return dest

    def cp_only(src: Path, rnd: int) -> None:
        cp(src, rnd)

    def cp_sync(src: Path, rnd: int) -> None:
        fsync_path(cp(src, rnd))

    def cp_adler(src: Path, rnd: int) -> None:
        cp(src, rnd)
        adler32_file(src)

    def cp_adler_sync(src: Path, rnd: int) -> None:
        dest = cp(src, rnd)
        adler32_file(src)
        fsync_path(dest)

    def put(src: Path, rnd: int) -> None:
        store = LocalStorage(out / f"put{rnd}")
        res = store.put(src, f"{src.stem}/{src.name}")
        assert res.copied

    methods: dict[str, Method] = {
        "cp": cp_only,
        "cp + sync FILE": cp_sync,
        "cp + adler32": cp_adler,
        "cp + adler32 + sync FILE": cp_adler_sync,
        "farmtools put (local)": put,
    }
    want = {src.name: adler32_file(src) for src in files}

    def check_and_clean() -> None:
        copies = [p for p in out.rglob("*.dat")]
        assert len(copies) == len(files), copies
        for p in copies:  # every copy is right
            assert adler32_file(p) == want[p.name], p
        shutil.rmtree(out)

    return run(methods, files, rounds, check_and_clean)


def xrootd_bench(files: list[Path], work: Path, rounds: int) -> dict[str, float]:
    from tests.servers.xrootd import XRootDServer

    base = work / "xrootd"
    base.mkdir()
    os.chmod(base, 0o755)
    server = XRootDServer(base)
    server.start()
    try:
        store = XRootDStorage(server.url, "/bench")
        store.mkdir("")

        def xrdcp(*opts: str) -> Method:
            def method(src: Path, rnd: int) -> None:
                dest = f"{server.url}//bench/xrdcp{'-'.join(o.strip('-') for o in opts)}{rnd}/"
                subprocess.run(
                    ["xrdcp", "--silent", "--force", "--path", *opts, str(src), dest + src.name],
                    check=True,
                    capture_output=True,  # adler32:source prints the sum even with --silent
                )

            return method

        def put(src: Path, rnd: int) -> None:
            assert store.put(src, f"put{rnd}/{src.name}").copied

        methods: dict[str, Method] = {
            "xrdcp --cksum adler32": xrdcp("--cksum", "adler32"),
            "xrdcp": xrdcp(),
            "xrdcp --cksum adler32:source": xrdcp("--cksum", "adler32:source"),
            "farmtools put (xrootd)": put,
        }
        want = {src.name: adler32_file(src) for src in files}
        exported = server.root / "bench"

        def check_and_clean() -> None:
            copies = [p for p in exported.rglob("*.dat")]
            assert len(copies) == len(files), copies
            for p in copies:
                rel = str(p.relative_to(exported))
                assert store.checksum(rel) == want[p.name], p  # the server's own adler32
                store.fs.rm(store._path(rel))

        return run(methods, files, rounds, check_and_clean)
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=1024, help="MiB per file")
    ap.add_argument("--files", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: /tmp)")
    ap.add_argument("--skip-xrootd", action="store_true")
    ap.add_argument("--skip-local", action="store_true")
    args = ap.parse_args()
    size = args.size_mb << 20
    need = size * args.files * 3  # the sources, one method's copies, slack
    work = Path(tempfile.mkdtemp(prefix="ft-bench-storage-", dir=args.dir))
    os.chmod(work, 0o755)  # the xrootd server runs as user xrootd
    free = shutil.disk_usage(work).free
    if free < need:
        shutil.rmtree(work)
        sys.exit(f"{work}: {free >> 20} MiB free, this run needs {need >> 20} MiB: use --size-mb")
    try:
        files = make_files(work, args.files, size)
        nbytes = size * args.files
        print(f"{args.files} files x {args.size_mb} MiB, best of {args.rounds} rounds, in {work}")
        if not args.skip_local:
            best = local_bench(files, work, args.rounds)
            report("local directory", best, nbytes, "farmtools put (local)")
            fair = best["farmtools put (local)"] / best["cp + adler32 + sync FILE"]
            print(f"  target: put <= 1.3 x (cp + adler32 + sync FILE) -> {fair:.3f}")
        if not args.skip_xrootd:
            if shutil.which("xrootd") is None or shutil.which("xrdcp") is None:
                print("\nxrootd/xrdcp not installed: XRootD part skipped")
            else:
                best = xrootd_bench(files, work, args.rounds)
                report("XRootD (local server)", best, nbytes, "farmtools put (xrootd)")
                ratio = best["farmtools put (xrootd)"] / best["xrdcp --cksum adler32"]
                print(f"  target: put faster than xrdcp --cksum adler32 -> {ratio:.3f} (< 1)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
