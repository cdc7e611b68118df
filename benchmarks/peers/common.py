"""What every peer adapter shares: its inputs, its budget, its result, and how it installs and runs.

A peer is a published program run for comparison (docs/peers.md). Its adapter installs it into a virtual
environment of its own, outside the repository (from the package index, or from a local checkout of its
public repository that the user names), converts a benchmark dataset to the program's inputs, runs the
program's own command line and returns the corrected tomogram. No peer code is in this repository; where a
program needs a change to run on a CPU, the adapter applies the smallest patch (:class:`Patch`) to a copy of
the checkout at install time, never to the user's checkout.

Volumes are MRC files indexed [z, y, x]; the pixel size is in Å, tilt angles in degrees, defocus in Å
(underfocus positive, 0: no CTF).
"""

import dataclasses
import glob
import os
import shutil
import subprocess
import sys
import tarfile
import time


@dataclasses.dataclass(frozen=True)
class PeerInput:
    """One benchmark dataset as the peers see it (a single tomogram with its even/odd halves).

    ``tomogram``, ``half1``, ``half2`` are as reconstructed (CTF not corrected); ``deconv_*`` are the same
    after this project's deconvolution (None without a CTF); ``mask`` is this project's sampling mask.
    """
    name: str
    tomogram: str
    half1: str
    half2: str
    mask: str
    pixel_size: float
    tilt_min: float
    tilt_max: float
    defocus: float = 0.0
    voltage: float = 300.0
    cs: float = 2.7
    amplitude_contrast: float = 0.07
    deconv_tomogram: str = None
    deconv_half1: str = None
    deconv_half2: str = None


@dataclasses.dataclass(frozen=True)
class PeerBudget:
    """The training budget: optimizer steps and batch size as in our benchmark run, and its sampling.

    ``cube`` is the training cube edge (voxels); ``subtomos`` the number of subvolumes sampled per tomogram
    where the program samples a fixed set; ``filter_base`` the width of the first U-Net layer where the
    program lets one choose it (None: the program's smallest documented network).
    """
    steps: int = 400
    batch_size: int = 4
    cube: int = 32
    subtomos: int = 40
    filter_base: int = 8
    seed: int = 0


@dataclasses.dataclass
class PeerResult:
    """What one run of a peer gives back: the corrected tomogram and the time it took.

    ``seconds_per_step``: training wall time over optimizer steps (data preparation excluded);
    ``predict_seconds``: wall time to correct the one tomogram; ``settings``: what was run (network size,
    cube, steps, command lines) for the docs.
    """
    corrected: str
    version: str
    steps: int
    batch_size: int
    train_seconds: float
    predict_seconds: float
    settings: dict

    @property
    def seconds_per_step(self):
        return self.train_seconds / self.steps


@dataclasses.dataclass(frozen=True)
class Patch:
    """One textual change to a peer's source, applied to the install copy: ``old`` must occur in ``path``."""
    path: str
    old: str
    new: str
    why: str

    def apply(self, root):
        path = os.path.join(root, self.path)
        with open(path) as handle:
            text = handle.read()
        if self.new in text and self.old not in text:
            return  # already applied
        if self.old not in text:
            raise RuntimeError(f"{path}: patch does not apply (text not found): {self.old[:60]!r}")
        with open(path, "w") as handle:
            handle.write(text.replace(self.old, self.new))


class Peer:
    """One program run for comparison. Subclasses set the class attributes and implement :meth:`run`.

    Attributes
    ----------
    name : str
        Row name in the tables.
    package : str or None
        Package-index requirement when the program is installed from there, else None (a checkout).
    requirements : list of str
        Package-index requirements installed first (the program's own dependencies).
    patches : list of Patch
        Changes applied to a copy of the checkout before installing it.
    """
    name = None
    package = None
    requirements = []
    patches = []

    def __init__(self, root, checkout=None):
        self.root = os.path.abspath(root)  # this peer's folder: venv/, src/
        self.checkout = checkout and os.path.abspath(checkout)

    @property
    def venv(self):
        return os.path.join(self.root, "venv")

    def bin(self, program):
        return os.path.join(self.venv, "bin", program)

    def install(self):
        """Create the venv and install the program (once; a stamp records what was installed). Returns its version.

        The source (a copy of the checkout, or the package's source distribution) is unpacked in ``root/src``,
        patched there, and installed without its dependencies after :attr:`requirements`.
        """
        stamp = os.path.join(self.root, "installed.txt")
        if os.path.isfile(stamp):
            with open(stamp) as handle:
                return handle.read().strip()
        if self.package is None and not self.checkout:
            raise SystemExit(f"{self.name}: not on the package index; give the path of a checkout of its repository")
        os.makedirs(self.root, exist_ok=True)
        if not os.path.isdir(self.venv):
            run([sys.executable, "-m", "venv", self.venv])
        pip = [self.bin("python"), "-m", "pip", "install", "-q"]
        run(pip + ["--upgrade", "pip", "wheel", "setuptools"])
        if self.requirements:
            run(pip + list(self.requirements))
        source = os.path.join(self.root, "src")
        shutil.rmtree(source, ignore_errors=True)
        if self.package:
            self.unpack_package(source)
        else:
            shutil.copytree(self.checkout, source, ignore=shutil.ignore_patterns(".git"))
        for patch in self.patches:
            patch.apply(source)
        self.install_source(source, pip)
        version = self.version_text()
        with open(stamp, "w") as handle:
            handle.write(version + "\n")
        return version

    def unpack_package(self, source):
        """Download :attr:`package`'s source distribution and unpack it as the folder ``source``."""
        dist = os.path.join(self.root, "dist")
        shutil.rmtree(dist, ignore_errors=True)
        run([self.bin("python"), "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
             self.package, "-d", dist])
        archive = glob.glob(os.path.join(dist, "*.tar.gz"))[0]
        with tarfile.open(archive) as tar:
            tar.extractall(dist)
        shutil.move(next(p for p in glob.glob(os.path.join(dist, "*")) if os.path.isdir(p)), source)

    def install_source(self, source, pip):
        """Install the patched source (default: ``pip install --no-deps``)."""
        run(pip + ["--no-deps", "--force-reinstall", source])

    def version_text(self):
        """What was installed: the package and its version, or the checkout's commit."""
        if self.package:
            return f"{self.package.split('=')[0]} {self.pip_version(self.package.split('=')[0])}"
        return f"{self.name} commit {git_commit(self.checkout)}"

    def pip_version(self, name):
        """The version pip reports for ``name`` in the venv ("?" if none)."""
        out = subprocess.run([self.bin("python"), "-m", "pip", "show", name], capture_output=True, text=True,
                             check=True).stdout
        return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Version:")), "?")

    def run(self, data, budget, folder):
        """Train on ``data`` with ``budget`` in ``folder`` and correct its tomogram (every CPU core; the GPU
        where the program finds one). Returns a :class:`PeerResult`."""
        raise NotImplementedError

    def command(self, args, cwd, log_name, env=None):
        """Run one of the peer's commands in its venv (PATH first), output to ``cwd/log_name``; returns seconds.

        Fails with the log's tail when the command fails (some programs exit 0 on errors: callers check outputs).
        """
        environment = dict(os.environ, PATH=os.path.join(self.venv, "bin") + os.pathsep + os.environ["PATH"],
                           VIRTUAL_ENV=self.venv, **(env or {}))
        environment.pop("PYTHONPATH", None)
        os.makedirs(cwd, exist_ok=True)
        log_path = os.path.join(cwd, log_name)
        start = time.perf_counter()
        with open(log_path, "a") as log:
            log.write("$ " + " ".join(map(str, args)) + "\n")
            log.flush()
            status = subprocess.run([str(a) for a in args], cwd=cwd, env=environment, stdout=log,
                                    stderr=subprocess.STDOUT).returncode
        seconds = time.perf_counter() - start
        if status != 0:
            raise RuntimeError(f"{self.name}: {args[0]} failed (status {status}); see {log_path}:\n"
                               + tail(log_path))
        return seconds


def run(args):
    subprocess.run([str(a) for a in args], check=True)


def tail(path, lines=20):
    with open(path, errors="replace") as handle:
        return "".join(handle.readlines()[-lines:])


def git_commit(checkout):
    try:
        return subprocess.run(["git", "-C", checkout, "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def require_file(path, program):
    """The output a program should have written; programs that exit 0 on errors are caught here."""
    if not os.path.isfile(path):
        raise RuntimeError(f"{program}: expected output {path} was not written")
    return path
