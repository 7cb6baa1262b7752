"""Discovery: includes minus excludes, ignore_older, rotated siblings, directories to watch, symlinks, and
listings kept between scans (what a scan with them finds is what a scan without them finds)."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from collectors.files import discovery
from collectors.files.discovery import ListingCache, Listings, Scan, discover, walk, watch_directories
from collectors.files.kube_paths import kubernetes_metadata


def make(path: Path, data: bytes = b"x\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_includes_excludes_siblings_and_age(tmp_path: Path) -> None:
    pods = tmp_path / "pods"
    live = make(pods / "ns_a_1111" / "app" / "0.log")
    make(pods / "ns_a_1111" / "app" / "0.log.20250610-082541")
    make(pods / "ns_a_1111" / "app" / "0.log.20250609-000000.gz")
    make(pods / "ns_b_2222" / "sidecar" / "0.log")
    old = make(pods / "ns_c_3333" / "app" / "1.log")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    scan = discover([str(pods / "*" / "*" / "*.log")], [str(pods / "*" / "sidecar" / "*")], ignore_older=3600)
    found = {(Path(f.path).relative_to(pods).as_posix(), f.rotated) for f in scan.files}
    assert found == {("ns_a_1111/app/0.log", False), ("ns_a_1111/app/0.log.20250610-082541", True)}
    assert {str(pods), str(live.parent), str(live.parent.parent)} <= scan.directories


def test_watch_directories_cover_every_wildcard_level(tmp_path: Path) -> None:
    make(tmp_path / "pods" / "ns_p_1" / "c" / "0.log")
    dirs = watch_directories(str(tmp_path / "pods" / "*" / "*" / "*.log"))
    assert dirs == {str(tmp_path / "pods"), str(tmp_path / "pods" / "ns_p_1"), str(tmp_path / "pods" / "ns_p_1" / "c")}


def test_container_symlinks_resolve_to_pod_metadata(tmp_path: Path) -> None:
    target = make(tmp_path / "pods" / "shop_web-7d9_0a1b2c3d-aaaa-bbbb-cccc-123456789abc" / "nginx" / "3.log")
    link = tmp_path / "containers" / "web-7d9_shop_nginx-abc.log"
    link.parent.mkdir()
    link.symlink_to(target)
    scan = discover([str(tmp_path / "containers" / "*.log")], [])
    assert [f.st.st_ino for f in scan.files] == [target.stat().st_ino]
    assert kubernetes_metadata(link) == {"namespace": "shop", "pod": "web-7d9", "container": "nginx", "restart": 3,
                                         "pod_uid": "0a1b2c3d-aaaa-bbbb-cccc-123456789abc"}
    assert kubernetes_metadata(tmp_path / "plain.log") == {}


def test_the_walk_finds_what_glob_finds(tmp_path: Path) -> None:
    """discover walks absolute patterns itself (each directory listed once); glob is the reference."""
    make(tmp_path / "pods" / "ns_a_1" / "app" / "0.log")
    make(tmp_path / "pods" / "ns_a_1" / "app" / ".hidden.log")
    make(tmp_path / "pods" / "ns_a_1" / "app" / "0.log.20250610-082541")
    make(tmp_path / "pods" / "ns_b_2" / "web" / "1.log")
    make(tmp_path / "pods" / "ns_b_2" / "web" / "notes.txt")
    make(tmp_path / "pods" / ".ns_hidden_3" / "app" / "0.log")
    make(tmp_path / "pods" / "ns_c_4" / "app")  # a file where a directory would be
    (tmp_path / "pods" / "ns_d_5").mkdir()
    (tmp_path / "pods" / "ns_d_5" / "app").symlink_to(tmp_path / "pods" / "ns_b_2" / "web")
    (tmp_path / "pods" / "ns_e_6").symlink_to(tmp_path / "missing")
    patterns = [str(tmp_path / "pods" / "*" / "*" / "*.log"), str(tmp_path / "pods" / "*" / "app" / "*.log"),
                str(tmp_path / "pods" / ".*" / "*" / "*.log"), str(tmp_path / "pods" / "ns_[ab]_?" / "*" / "[0-9].log"),
                str(tmp_path / "pods" / "ns_a_1" / "app" / "0.log"), str(tmp_path / "pods" / "*" / "*" / ".*"),
                str(tmp_path / "none" / "*" / "*.log"), str(tmp_path / "pods" / "*")]
    for pattern in patterns:
        walked = walk(pattern, Listings())
        assert walked is not None
        files, directories = walked
        assert sorted(files) == sorted(glob.glob(pattern)), pattern
        assert directories == watch_directories(pattern), pattern
    assert walk(str(tmp_path / "pods" / "**" / "*.log"), Listings()) is None  # recursive: glob does it
    assert walk("pods/*/*/*.log", Listings()) is None  # relative: glob does it
    found = {Path(f.path).relative_to(tmp_path).as_posix() for f in discover(patterns[:1], []).files}
    assert found == {"pods/ns_a_1/app/0.log", "pods/ns_a_1/app/0.log.20250610-082541", "pods/ns_b_2/web/1.log",
                     "pods/ns_d_5/app/1.log"}


def test_a_pattern_whose_fixed_root_is_missing_is_reported(tmp_path: Path) -> None:
    (tmp_path / "there").mkdir()
    scan = discover([str(tmp_path / "there" / "*.log"), str(tmp_path / "later" / "*" / "*.log")], [])
    assert scan.missing_roots == {str(tmp_path / "later")}
    (tmp_path / "later").mkdir()
    assert discover([str(tmp_path / "later" / "*" / "*.log")], []).missing_roots == set()


def found(scan: Scan) -> tuple[set[tuple[str, bool, int, str]], set[str], set[str]]:
    return ({(f.path, f.rotated, f.st.st_ino, f.origin) for f in scan.files}, scan.directories, scan.missing_roots)


# a node's layout changing between scans: pods and containers come and go, files are rotated (renamed
# and created again), a container directory is a symlink whose target becomes a file
OPERATIONS = st.lists(st.tuples(st.sampled_from(["pod", "container", "log", "rotate", "remove", "rmdir", "link",
                                                 "retarget", "touch", "scan"]),
                                st.integers(0, 1), st.integers(0, 1)), max_size=12)


@settings(max_examples=40, deadline=None)
@given(operations=OPERATIONS)
# a link made to a target that an earlier retarget turned into a file (found by this test in CI's shape)
@example(operations=[("pod", 0, 0), ("pod", 1, 0), ("link", 0, 0), ("retarget", 0, 0), ("link", 1, 0)])
def test_a_scan_with_kept_listings_finds_what_a_fresh_scan_finds(operations: list[tuple[str, int, int]]) -> None:
    """Each scan with a ListingCache equals a scan without one, however the tree changed in between.
    SETTLED_NS is 0 here so that every listing is kept and reused whenever its directory's stat is
    unchanged; the pause after each scan keeps the next change out of the clock tick of that scan's stats
    (what SETTLED_NS stands for in the product, tested below)."""
    root = Path(tempfile.mkdtemp())
    patterns = [str(root / "pods" / "*" / "*" / "*.log"), str(root / "pods" / "ns_p0" / "*" / "0.log")]
    cache = ListingCache()
    saved, ListingCache.SETTLED_NS = ListingCache.SETTLED_NS, 0
    try:
        (root / "pods").mkdir()
        for step, (operation, pod_index, container_index) in enumerate(operations + [("scan", 0, 0)]):
            pod = root / "pods" / f"ns_p{pod_index}"
            container = pod / f"c{container_index}"
            log = container / "0.log"
            if operation == "pod":
                pod.mkdir(exist_ok=True)
            elif operation == "container" and pod.is_dir():
                container.mkdir(exist_ok=True)
            elif operation == "log" and container.is_dir():
                log.write_bytes(b"line\n")
            elif operation == "rotate" and log.is_file():
                log.rename(container / f"0.log.{step}")
                log.write_bytes(b"again\n")
            elif operation == "remove" and log.is_file():
                log.unlink()
            elif operation == "rmdir" and container.is_symlink():
                container.unlink()
            elif operation == "rmdir" and container.is_dir():
                shutil.rmtree(container)
            elif operation == "link" and pod.is_dir() and not os.path.lexists(container):
                target = root / f"target{container_index}"
                if not target.is_file():  # a retargeted target is a file: the new link points at it as it is
                    target.mkdir(exist_ok=True)
                    (target / "0.log").write_bytes(b"linked\n")
                container.symlink_to(target)
            elif operation == "retarget" and (root / f"target{container_index}").is_dir():
                target = root / f"target{container_index}"  # its symlink's directory does not change
                shutil.rmtree(target)
                target.write_bytes(b"now a file\n")
            elif operation == "touch" and container.is_dir():
                os.utime(container)  # its stat changes, what it holds does not
            elif operation == "scan":
                fresh = found(discover(patterns, []))
                assert found(discover(patterns, [], cache=cache)) == fresh, operations[:step + 1]
                time.sleep(0.025)
    finally:
        ListingCache.SETTLED_NS = saved
        shutil.rmtree(root)


def test_listings_are_taken_again_only_where_something_changed(tmp_path: Path, monkeypatch: Any) -> None:
    for pod in range(3):
        make(tmp_path / "pods" / f"ns_p{pod}" / "app" / "0.log")
    pattern = str(tmp_path / "pods" / "*" / "*" / "*.log")
    listed: list[str] = []
    scandir = os.scandir
    monkeypatch.setattr(discovery.os, "scandir", lambda path: listed.append(path) or scandir(path))
    monkeypatch.setattr(ListingCache, "SETTLED_NS", 0)
    cache = ListingCache()
    discover([pattern], [], cache=cache)
    assert len(listed) == 7  # pods, 3 pod directories, 3 container directories
    time.sleep(0.025)  # (out of the tick of the scan's stats: see the test above)
    listed.clear()
    assert len(discover([pattern], [], cache=cache).files) == 3
    assert listed == []
    make(tmp_path / "pods" / "ns_p1" / "app" / "0.log.1")
    assert {(Path(f.path).name, f.rotated) for f in discover([pattern], [], cache=cache).files} == {
        ("0.log", False), ("0.log.1", True)}
    assert listed == [str(tmp_path / "pods" / "ns_p1" / "app")]


def test_a_listing_is_kept_only_once_its_directory_had_not_changed_for_a_while(tmp_path: Path,
                                                                           monkeypatch: Any) -> None:
    """A change in the clock tick of the stat taken before a listing could leave the directory's mtime as
    it was: a listing of a directory changed less than SETTLED_NS before is taken again at the next scan,
    one of a directory unchanged for longer is not. (SETTLED_NS is set around the tree's age here, as how
    long a scan takes after the tree was made depends on this machine's load.)"""
    make(tmp_path / "pods" / "ns_p0" / "app" / "0.log")
    directories = [tmp_path / "pods", tmp_path / "pods" / "ns_p0", tmp_path / "pods" / "ns_p0" / "app"]
    pattern = str(tmp_path / "pods" / "*" / "*" / "*.log")
    listed: list[str] = []
    scandir = os.scandir
    monkeypatch.setattr(discovery.os, "scandir", lambda path: listed.append(path) or scandir(path))
    monkeypatch.setattr(ListingCache, "SETTLED_NS", 3600 * 10**9)  # every directory changed less than that ago
    cache = ListingCache()
    discover([pattern], [], cache=cache)
    listed.clear()
    discover([pattern], [], cache=cache)
    assert len(listed) == 3, "a directory changed just now was not listed again"
    newest = max(max(d.stat().st_mtime_ns, d.stat().st_ctime_ns) for d in directories)
    monkeypatch.setattr(ListingCache, "SETTLED_NS", time.time_ns() - newest)  # every one unchanged that long
    discover([pattern], [], cache=cache)
    listed.clear()
    discover([pattern], [], cache=cache)
    assert listed == []


def test_a_symlinked_directory_whose_target_comes_and_goes_is_followed_as_glob_follows_it(tmp_path: Path,
                                                                                         monkeypatch: Any) -> None:
    """A symlink's target can become a directory, or stop being one, without the symlink's directory
    changing: whether such an entry names a directory is looked at in every scan, not kept."""
    monkeypatch.setattr(ListingCache, "SETTLED_NS", 0)
    target = tmp_path / "elsewhere"
    (tmp_path / "pods" / "ns_p0").mkdir(parents=True)
    (tmp_path / "pods" / "ns_p0" / "app").symlink_to(target)
    pattern = str(tmp_path / "pods" / "*" / "*" / "*.log")
    cache = ListingCache()
    for expected in ([], ["0.log"], []):
        if expected:
            make(target / "0.log")
        elif target.exists():
            shutil.rmtree(target)
            target.write_bytes(b"a file now\n")
        scan = discover([pattern], [], cache=cache)
        assert [Path(f.path).name for f in scan.files] == expected == [Path(p).name for p in glob.glob(pattern)]
        assert found(scan) == found(discover([pattern], []))
        time.sleep(0.025)  # (out of the tick of the scan's stats)
