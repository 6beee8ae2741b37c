#!/usr/bin/env python3
"""Write an OCI image layout directory for a synthetic image described by flags.

Python 3 standard library only.  The output is deterministic: the same flags (and
the same /bin/busybox, and for zstd the same zstd binary) give byte-identical
blobs, manifest and index.json.

Layers, bottom to top:
  1. --busybox            bin/busybox (copied from --busybox-path, default /bin/busybox,
                          mode 0755) + applet symlinks bin/<applet> -> busybox, etc/passwd
                          (root 0, nobody 65534, app 1000), etc/group, tmp (01777),
                          root (0700), and empty dev/ proc/ sys/ mount points.
  2. --file ...           all --file flags together make one layer (in argument order).
  3. --layer-random-mb N  one layer per flag (in argument order): a few files under
                          data/layerK/ totalling N MiB of pseudo-random, incompressible
                          bytes derived from --seed and the layer number.
  4. --layer-compressible-mb N  the same, with data that compresses to about half.
  5. --layer-tree SRC=DEST[,SRC=DEST...]  one layer per flag: real host trees (files,
                          directories and symlinks with their modes; other kinds and
                          unreadable files skipped), each SRC copied to DEST in the image.

Every tar is PAX format, entries sorted, numeric owner 0:0 (no user/group names),
mtime fixed by --mtime.  A parent directory a layer needs is written with the
mode the lower layers gave it (so a --file under tmp/ keeps tmp at 01777).

Examples:
  scripts/make_image.py --out /tmp/img --ref example.com/demo/app:1 --busybox \\
      --layer-random-mb 40 --layer-random-mb 40 --cmd 'sh -c "echo hi; sleep 1"' \\
      --env FOO=bar --volume /data --file etc/motd='hello'
  skopeo inspect oci:/tmp/img
  layerlet --root /tmp/x image import /tmp/img
"""

import argparse
import gzip
import hashlib
import io
import json
import multiprocessing
import os
import platform
import random
import shlex
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile

MiB = 1024 * 1024
CHUNK = MiB
DEFAULT_MTIME = 1704067200  # 2024-01-01T00:00:00Z
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_GZIP_LEVEL = 6

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}
REF_NAME = "org.opencontainers.image.ref.name"

APPLETS = [
    "sh", "ls", "cat", "echo", "sleep", "true", "false", "id", "touch", "rm", "mkdir",
    "stat", "wc", "head", "du", "dd", "hostname", "env", "ps", "mount", "grep", "sed",
]

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    "app:x:1000:1000:app:/tmp:/bin/sh\n"
)
GROUP = "root:x:0:\nnobody:x:65534:\napp:x:1000:\n"


# ---------------------------------------------------------------------------
# Layer content: a list of entries (path, kind, mode, payload), kind in
# "dir" | "file" | "symlink"; payload is bytes, a (seed, size) random spec,
# a host path to copy, or a link target.


class RandomReader:
    """File-like object producing `size` deterministic pseudo-random bytes."""

    # Half-entropy alphabet for "compressible" data: 16 symbols, 4 bits per byte, which
    # deflate and zstd shrink to about half (no long matches, so it stays fast to make).
    HALF = bytes(b"0123456789abcdef"[i & 15] for i in range(256))

    def __init__(self, seed, size, compressible=False):
        self.rng = random.Random(seed)  # str seeds hash with SHA-512: stable across runs
        self.compressible = compressible
        self.left = size
        self.buf = b""
        self.pos = 0

    def read(self, n=-1):
        if n is None or n < 0:
            n = self.left + len(self.buf) - self.pos
        parts = []
        while n > 0:
            if self.pos >= len(self.buf):
                if self.left <= 0:
                    break
                k = min(CHUNK, self.left)
                self.buf, self.pos = self.rng.randbytes(k), 0
                if self.compressible:
                    self.buf = self.buf.translate(self.HALF)
                self.left -= k
            part = self.buf[self.pos : self.pos + n]
            self.pos += len(part)
            n -= len(part)
            parts.append(part)
        return b"".join(parts)


class HashWriter:
    """Write-through wrapper counting and hashing what passes."""

    def __init__(self, inner):
        self.inner = inner
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, b):
        self.sha.update(b)
        self.size += len(b)
        self.inner.write(b)
        return len(b)

    def flush(self):
        pass

    def digest(self):
        return "sha256:" + self.sha.hexdigest()


class RawZstdWriter:
    """zstd frame made of Raw (stored) blocks: valid zstd, no compression.

    Used only when no `zstd` binary is available.  Window_Descriptor 0x38 is a
    128 KiB window (the largest block size), no content size, no checksum.
    """

    BLOCK = 128 * 1024

    def __init__(self, out):
        self.out = out
        self.pending = b""
        out.write(struct.pack("<I", 0xFD2FB528) + bytes([0x00, 0x38]))

    def _block(self, data, last):
        hdr = (len(data) << 3) | (0 << 1) | (1 if last else 0)
        self.out.write(hdr.to_bytes(3, "little") + data)

    def write(self, b):
        self.pending += b
        while len(self.pending) > self.BLOCK:
            self._block(self.pending[: self.BLOCK], False)
            self.pending = self.pending[self.BLOCK:]
        return len(b)

    def flush(self):
        pass

    def close(self):
        self._block(self.pending, True)
        self.pending = b""


def tarinfo(path, kind, mode, mtime, size=0, link=""):
    ti = tarfile.TarInfo(path)
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    ti.mtime = mtime
    ti.mode = mode
    if kind == "dir":
        ti.type = tarfile.DIRTYPE
    elif kind == "symlink":
        ti.type = tarfile.SYMTYPE
        ti.linkname = link
    else:
        ti.type = tarfile.REGTYPE
        ti.size = size
    return ti


def write_tar(entries, out, mtime):
    """Write entries as a PAX tar into the file-like `out` (sequential writes only)."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path, kind, mode, payload in sorted(entries, key=lambda e: e[0]):
            if kind == "dir":
                tar.addfile(tarinfo(path + "/", "dir", mode, mtime))
            elif kind == "symlink":
                tar.addfile(tarinfo(path, "symlink", mode, mtime, link=payload))
            elif isinstance(payload, bytes):
                tar.addfile(tarinfo(path, "file", mode, mtime, len(payload)), io.BytesIO(payload))
            elif isinstance(payload, tuple) and payload[0] in ("random", "half"):
                kind_, seed, size = payload
                reader = RandomReader(seed, size, compressible=kind_ == "half")
                tar.addfile(tarinfo(path, "file", mode, mtime, size), reader)
            elif isinstance(payload, tuple) and payload[0] == "host":
                with open(payload[1], "rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    tar.addfile(tarinfo(path, "file", mode, mtime, size), f)
            else:
                raise ValueError(f"bad entry {path}")


def build_layer(job):
    """Build one layer blob in blobs/sha256. Runs in a worker process.

    Returns (digest, size, diff_id, unpacked_content_bytes).
    """
    entries, compression, gzip_level, zstd_impl, blobdir, mtime = job
    fd, tmp = tempfile.mkstemp(prefix=".tmp-layer-", dir=blobdir)
    try:
        with os.fdopen(fd, "wb") as f:
            if compression == "zstd" and zstd_impl == "cli":
                # tar -> (hash diff_id) -> zstd stdin; zstd stdout -> temp file.
                proc = subprocess.Popen(
                    ["zstd", "-q", "-3", "-T1", "-c"], stdin=subprocess.PIPE, stdout=f
                )
                tee = HashWriter(proc.stdin)
                write_tar(entries, tee, mtime)
                proc.stdin.close()
                if proc.wait() != 0:
                    raise RuntimeError("zstd failed")
            else:
                blob = HashWriter(f)
                if compression == "gzip":
                    comp = gzip.GzipFile(
                        filename="", mode="wb", compresslevel=gzip_level, fileobj=blob, mtime=0
                    )
                elif compression == "zstd":
                    comp = RawZstdWriter(blob)
                else:
                    comp = None
                tee = HashWriter(comp if comp is not None else blob)
                write_tar(entries, tee, mtime)
                if comp is not None:
                    comp.close()
            f.flush()
            os.fsync(f.fileno())
        digest, size = file_digest(tmp)
        os.replace(tmp, os.path.join(blobdir, digest.split(":", 1)[1]))
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    content = sum(entry_size(e) for e in entries)
    return digest, size, tee.digest(), content


def entry_size(e):
    path, kind, mode, payload = e
    if kind == "file":
        if isinstance(payload, bytes):
            return len(payload)
        if payload[0] in ("random", "half"):
            return payload[2]
        return os.path.getsize(payload[1])
    return 0


def file_digest(path):
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while True:
            b = f.read(4 * MiB)
            if not b:
                break
            h.update(b)
            size += len(b)
    return "sha256:" + h.hexdigest(), size


def write_blob(blobdir, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = os.path.join(blobdir, digest.split(":", 1)[1])
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return digest, len(data)


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


# ---------------------------------------------------------------------------


def host_arch():
    m = platform.machine().lower()
    return {
        "x86_64": ("amd64", None),
        "amd64": ("amd64", None),
        "aarch64": ("arm64", None),
        "arm64": ("arm64", None),
        "armv7l": ("arm", "v7"),
        "armv6l": ("arm", "v6"),
        "i686": ("386", None),
        "i386": ("386", None),
        "ppc64le": ("ppc64le", None),
        "s390x": ("s390x", None),
        "riscv64": ("riscv64", None),
    }.get(m, (m, None))


def norm_path(p, what):
    parts = [x for x in p.strip("/").split("/") if x not in ("", ".")]
    if not parts or ".." in parts:
        raise SystemExit(f"make_image.py: {what}: bad path {p!r}")
    return "/".join(parts)


def parse_file_flag(spec):
    """PATH[:MODE]=CONTENT; CONTENT '@HOSTFILE' reads a host file."""
    if "=" not in spec:
        raise SystemExit(f"make_image.py: --file {spec!r}: expected PATH[:MODE]=CONTENT")
    target, content = spec.split("=", 1)
    mode = 0o644
    if ":" in target:
        head, tail = target.rsplit(":", 1)
        if tail and all(c in "01234567" for c in tail):
            target, mode = head, int(tail, 8)
    path = norm_path(target, "--file")
    if content.startswith("@"):
        with open(content[1:], "rb") as f:
            data = f.read()
    else:
        data = content.encode()
    return path, mode, data


def tree_entries(spec):
    """Entries of one --layer-tree flag: SRC=DEST[,SRC=DEST...], walked in sorted order."""
    entries = {}
    for part in spec.split(","):
        if "=" not in part:
            raise SystemExit(f"make_image.py: --layer-tree {spec!r}: expected SRC=DEST[,SRC=DEST]")
        src, dest = part.split("=", 1)
        dest = norm_path(dest, "--layer-tree")
        if not os.path.isdir(src):
            raise SystemExit(f"make_image.py: --layer-tree: {src} is not a directory")
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            rel = os.path.relpath(dirpath, src)
            base = dest if rel == "." else f"{dest}/{rel}"
            entries[base] = (base, "dir", os.lstat(dirpath).st_mode & 0o7777, None)
            for name in sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                host = os.path.join(dirpath, name)
                st = os.lstat(host)
                path = f"{base}/{name}"
                if os.path.islink(host):
                    entries[path] = (path, "symlink", 0o777, os.readlink(host))
                elif os.path.isfile(host) and os.access(host, os.R_OK):
                    entries[path] = (path, "file", st.st_mode & 0o7777, ("host", host))
    return list(entries.values())


def with_parents(entries, known_dirs):
    """Add a dir entry for every missing parent, with the mode lower layers gave it."""
    have = {e[0] for e in entries}
    extra = []
    for path, *_ in entries:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in have:
                have.add(d)
                extra.append((d, "dir", known_dirs.get(d, 0o755), None))
    for path, kind, mode, _ in entries + extra:
        if kind == "dir":
            known_dirs[path] = mode
    return entries + extra


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", required=True, help="output OCI layout directory")
    ap.add_argument("--ref", required=True,
                    help="image reference, written to index.json as "
                         "org.opencontainers.image.ref.name (e.g. example.com/demo/app:1)")
    ap.add_argument("--busybox", action="store_true", help="add the busybox base layer first")
    ap.add_argument("--busybox-path", default="/bin/busybox",
                    help="static busybox to copy (default /bin/busybox)")
    ap.add_argument("--layer-random-mb", action="append", type=float, default=[], metavar="N",
                    help="add a layer of N MiB (1048576 bytes) of incompressible pseudo-random "
                         "data in a few files; repeatable")
    ap.add_argument("--layer-compressible-mb", action="append", type=float, default=[],
                    metavar="N",
                    help="add a layer of N MiB of pseudo-random data over a 16-symbol "
                         "alphabet, which compresses to about half; repeatable, placed after "
                         "the --layer-random-mb layers")
    ap.add_argument("--layer-tree", action="append", default=[], metavar="SRC=DEST[,SRC=DEST]",
                    help="add a layer of real host trees (SRC copied to DEST); repeatable, "
                         "placed after the random layers")
    ap.add_argument("--files-per-layer", type=int, default=4,
                    help="files per random layer (default 4)")
    ap.add_argument("--file", action="append", default=[], metavar="PATH[:MODE]=CONTENT",
                    help="a file (mode octal, default 0644; CONTENT '@HOSTFILE' reads a file); "
                         "all --file flags form one layer above busybox")
    ap.add_argument("--compression", choices=["gzip", "zstd", "none"], default="gzip",
                    help="layer compression (default gzip)")
    ap.add_argument("--gzip-level", type=int, default=DEFAULT_GZIP_LEVEL, choices=range(0, 10),
                    metavar="0-9",
                    help=f"gzip level (default {DEFAULT_GZIP_LEVEL}, as docker/containerd use)")
    ap.add_argument("--zstd-impl", choices=["auto", "cli", "raw"], default="auto",
                    help="zstd encoder: the `zstd` binary at level 3 (cli), or a pure-Python "
                         "frame of stored blocks (raw); auto = cli when installed")
    ap.add_argument("--cmd", help="Cmd, split with shell rules (e.g. 'sh -c \"echo hi\"')")
    ap.add_argument("--entrypoint", help="Entrypoint, split with shell rules")
    ap.add_argument("--env", action="append", default=[], metavar="K=V",
                    help=f"environment (default {DEFAULT_PATH}; a PATH= given here replaces it)")
    ap.add_argument("--volume", action="append", default=[], metavar="PATH",
                    help="declare a VOLUME (config.Volumes)")
    ap.add_argument("--user", help="config.User (e.g. 1000:1000 or app)")
    ap.add_argument("--workdir", help="config.WorkingDir")
    ap.add_argument("--label", action="append", default=[], metavar="K=V", help="config.Labels")
    ap.add_argument("--arch", help="architecture (default: this machine, amd64 for x86_64)")
    ap.add_argument("--seed", type=int, default=0, help="seed for the random layers (default 0)")
    ap.add_argument("--mtime", type=int, default=DEFAULT_MTIME,
                    help=f"mtime of every tar entry and the 'created' times "
                         f"(default {DEFAULT_MTIME} = 2024-01-01T00:00:00Z)")
    ap.add_argument("--no-empty-history", action="store_true",
                    help="omit the empty_layer history entries for ENV/CMD/VOLUME...")
    ap.add_argument("--append", action="store_true",
                    help="add this image to an existing layout (an entry with the same ref "
                         "is replaced) instead of requiring an empty --out")
    ap.add_argument("--force", action="store_true", help="wipe --out first if it is not empty")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1,
                    help="layers built in parallel (default: CPU count)")
    ap.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    args = ap.parse_args()

    out = args.out
    if os.path.exists(out) and os.listdir(out):
        if args.force:
            shutil.rmtree(out)
        elif not (args.append and os.path.exists(os.path.join(out, "oci-layout"))):
            raise SystemExit(f"make_image.py: {out} is not empty (use --force or --append)")
    blobdir = os.path.join(out, "blobs", "sha256")
    os.makedirs(blobdir, exist_ok=True)

    zstd_impl = args.zstd_impl
    if zstd_impl == "auto":
        zstd_impl = "cli" if shutil.which("zstd") else "raw"
    elif zstd_impl == "cli" and not shutil.which("zstd"):
        raise SystemExit("make_image.py: --zstd-impl cli: no zstd binary in PATH")

    mtime = args.mtime
    # Layer plans: (entries, created_by).
    plans = []
    known_dirs = {}
    if args.busybox:
        if not os.path.exists(args.busybox_path):
            raise SystemExit(f"make_image.py: {args.busybox_path} not found (apt install busybox-static)")
        entries = [
            ("bin", "dir", 0o755, None),
            ("bin/busybox", "file", 0o755, ("host", args.busybox_path)),
            ("etc", "dir", 0o755, None),
            ("etc/passwd", "file", 0o644, PASSWD.encode()),
            ("etc/group", "file", 0o644, GROUP.encode()),
            ("tmp", "dir", 0o1777, None),
            ("root", "dir", 0o700, None),
            ("dev", "dir", 0o755, None),
            ("proc", "dir", 0o555, None),
            ("sys", "dir", 0o555, None),
        ]
        for applet in sorted(set(APPLETS)):
            entries.append((f"bin/{applet}", "symlink", 0o777, "busybox"))
        plans.append((with_parents(entries, known_dirs), "COPY busybox / # make_image.py --busybox"))
    if args.file:
        seen = {}
        for spec in args.file:
            path, mode, data = parse_file_flag(spec)
            seen[path] = (path, "file", mode, data)  # last one wins
        entries = with_parents(list(seen.values()), known_dirs)
        names = " ".join(sorted(seen))
        plans.append((entries, f"COPY {names} / # make_image.py --file"))
    random_layers = [(mb, "random") for mb in args.layer_random_mb]
    random_layers += [(mb, "half") for mb in args.layer_compressible_mb]
    for k, (mb, kind) in enumerate(random_layers):
        total = int(mb * MiB)
        if total < 0:
            raise SystemExit("make_image.py: --layer-random-mb must be >= 0")
        nfiles = max(1, min(args.files_per_layer, (total + MiB - 1) // MiB or 1))
        entries = []
        for j in range(nfiles):
            size = total // nfiles + (total % nfiles if j == nfiles - 1 else 0)
            seed = f"layerlet-make-image:{args.seed}:{k}:{j}"
            entries.append((f"data/layer{k}/part{j}.bin", "file", 0o644, (kind, seed, size)))
        entries = with_parents(entries, known_dirs)
        what = "make-random" if kind == "random" else "make-compressible"
        plans.append((entries, f"RUN {what} --seed {args.seed} --layer {k} --mb {mb:g}"))

    for spec in args.layer_tree:
        plans.append((with_parents(tree_entries(spec), known_dirs), f"COPY {spec} # make_image.py --layer-tree"))

    jobs = [(e, args.compression, args.gzip_level, zstd_impl, blobdir, mtime) for e, _ in plans]
    if args.jobs > 1 and len(jobs) > 1:
        with multiprocessing.Pool(min(args.jobs, len(jobs))) as pool:
            results = pool.map(build_layer, jobs)
    else:
        results = [build_layer(j) for j in jobs]

    arch, variant = host_arch()
    if args.arch:
        arch, variant = args.arch, None
    created = __import__("datetime").datetime.fromtimestamp(
        mtime, __import__("datetime").timezone.utc
    ).strftime("%Y-%m-%dT%H:%M:%SZ")

    env = list(args.env)
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, DEFAULT_PATH)
    cfg = {"Env": env}
    if args.entrypoint:
        cfg["Entrypoint"] = shlex.split(args.entrypoint)
    if args.cmd:
        cfg["Cmd"] = shlex.split(args.cmd)
    elif args.busybox and not args.entrypoint:
        cfg["Cmd"] = ["sh"]
    if args.volume:
        cfg["Volumes"] = {"/" + norm_path(v, "--volume"): {} for v in args.volume}
    if args.user:
        cfg["User"] = args.user
    if args.workdir:
        cfg["WorkingDir"] = args.workdir
    if args.label:
        cfg["Labels"] = dict(kv.split("=", 1) if "=" in kv else (kv, "") for kv in args.label)

    history = [{"created": created, "created_by": by} for _, by in plans]
    if not args.no_empty_history:
        nop = "/bin/sh -c #(nop) "
        extra = []
        for e in args.env:
            extra.append(f"{nop}ENV {e}")
        for v in args.volume:
            extra.append(f"{nop}VOLUME [{json.dumps(v)}]")
        if args.user:
            extra.append(f"{nop}USER {args.user}")
        if args.workdir:
            extra.append(f"{nop}WORKDIR {args.workdir}")
        if "Entrypoint" in cfg:
            extra.append(f"{nop}ENTRYPOINT {json.dumps(cfg['Entrypoint'])}")
        if args.cmd:
            extra.append(f"{nop}CMD {json.dumps(cfg['Cmd'])}")
        history += [{"created": created, "created_by": by, "empty_layer": True} for by in extra]

    config = {
        "created": created,
        "architecture": arch,
        **({"variant": variant} if variant else {}),
        "os": "linux",
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": [r[2] for r in results]},
        "history": history,
    }
    config_digest, config_size = write_blob(blobdir, dumps(config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": config_digest, "size": config_size},
        "layers": [
            {"mediaType": MT_LAYER[args.compression], "digest": d, "size": s}
            for d, s, _, _ in results
        ],
    }
    manifest_digest, manifest_size = write_blob(blobdir, dumps(manifest))

    plat = {"architecture": arch, "os": "linux"}
    if variant:
        plat["variant"] = variant
    entry = {
        "mediaType": MT_MANIFEST,
        "digest": manifest_digest,
        "size": manifest_size,
        "annotations": {REF_NAME: args.ref},
        "platform": plat,
    }
    index_path = os.path.join(out, "index.json")
    manifests = []
    if args.append and os.path.exists(index_path):
        with open(index_path) as f:
            manifests = [
                m for m in json.load(f).get("manifests", [])
                if m.get("annotations", {}).get(REF_NAME) != args.ref
            ]
    manifests.append(entry)
    index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": manifests}
    with open(os.path.join(out, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    tmp = index_path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(json.dumps(index, indent=2).encode() + b"\n")
    os.replace(tmp, index_path)

    if not args.quiet:
        unpacked = sum(r[3] for r in results)
        compressed = sum(r[1] for r in results)
        print(f"wrote {out}: {args.ref} manifest {manifest_digest}")
        print(f"  {len(results)} layers ({args.compression}), {compressed} bytes compressed, "
              f"{unpacked} bytes of file content unpacked")
        for (d, s, diff, c), (_, by) in zip(results, plans):
            print(f"  {d} {s:>11} diff_id {diff[:19]}... {by}")


if __name__ == "__main__":
    main()
