"""Discovery: includes minus excludes, ignore_older, rotated siblings, directories to watch, symlinks."""

from __future__ import annotations

import glob
import os
import time
from pathlib import Path

from collectors.files.discovery import discover, walk, watch_directories
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
        walked = walk(pattern, {})
        assert walked is not None
        files, directories = walked
        assert sorted(files) == sorted(glob.glob(pattern)), pattern
        assert directories == watch_directories(pattern), pattern
    assert walk(str(tmp_path / "pods" / "**" / "*.log"), {}) is None  # recursive: glob does it
    assert walk("pods/*/*/*.log", {}) is None  # relative: glob does it
    found = {Path(f.path).relative_to(tmp_path).as_posix() for f in discover(patterns[:1], []).files}
    assert found == {"pods/ns_a_1/app/0.log", "pods/ns_a_1/app/0.log.20250610-082541", "pods/ns_b_2/web/1.log",
                     "pods/ns_d_5/app/1.log"}


def test_a_pattern_whose_fixed_root_is_missing_is_reported(tmp_path: Path) -> None:
    (tmp_path / "there").mkdir()
    scan = discover([str(tmp_path / "there" / "*.log"), str(tmp_path / "later" / "*" / "*.log")], [])
    assert scan.missing_roots == {str(tmp_path / "later")}
    (tmp_path / "later").mkdir()
    assert discover([str(tmp_path / "later" / "*" / "*.log")], []).missing_roots == set()
