"""The peers' adapters (benchmarks/peers/): patches applied to a copy, the registry, the inputs."""

import os
import sys

import pytest

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "benchmarks"))

from peers import ADAPTERS, adapter  # noqa: E402
from peers.common import Patch, Peer, git_commit, require_file  # noqa: E402


def test_patch_applies_once_and_refuses_text_it_cannot_find(tmp_path):
    source = tmp_path / "pkg.py"
    source.write_text("model = model.cuda()\nx = 1\n")
    patch = Patch("pkg.py", "model.cuda()", "model.to(DEVICE)", why="no GPU")
    patch.apply(str(tmp_path))
    assert source.read_text() == "model = model.to(DEVICE)\nx = 1\n"
    patch.apply(str(tmp_path))  # applied already: unchanged
    assert source.read_text() == "model = model.to(DEVICE)\nx = 1\n"
    with pytest.raises(RuntimeError, match="pkg.py: patch does not apply"):
        Patch("pkg.py", "torch.cuda.set_device", "pass", why="-").apply(str(tmp_path))


def test_every_adapter_is_a_peer_with_its_row_name(tmp_path):
    for name in ADAPTERS:
        peer = adapter(name, str(tmp_path), checkout=str(tmp_path))
        assert isinstance(peer, Peer)
        assert peer.name == name
        assert peer.venv == os.path.join(str(tmp_path), name, "venv")
        assert all(isinstance(p, Patch) and p.why for p in peer.patches)
        seeded = adapter(name, str(tmp_path), checkout=str(tmp_path), row=name + "_seed1")
        assert seeded.name == name + "_seed1" and seeded.venv == peer.venv  # another seed, the same install


def test_a_peer_not_on_the_package_index_needs_a_checkout(tmp_path):
    peers = [adapter(name, str(tmp_path)) for name in ADAPTERS]
    for peer in peers:
        if peer.package is None:
            with pytest.raises(SystemExit, match="give the path of a checkout"):
                peer.install()
    assert not os.listdir(str(tmp_path))  # nothing made before the check


def test_commands_fail_with_their_log(tmp_path):
    peer = Peer(str(tmp_path / "peer"))
    peer.name = "fake"
    os.makedirs(os.path.dirname(peer.bin("x")))
    assert peer.command([sys.executable, "-c", "print('fine')"], str(tmp_path / "run"), "a.log") >= 0
    with pytest.raises(RuntimeError, match=r"(?s)fake: .* failed \(status 3\).*\nboom\n"):
        peer.command([sys.executable, "-c", "print('boom'); raise SystemExit(3)"], str(tmp_path / "run"), "a.log")
    with pytest.raises(RuntimeError, match="was not written"):
        require_file(str(tmp_path / "none.mrc"), "fake")
    assert git_commit(str(tmp_path)) == "unknown (not a git checkout)"
