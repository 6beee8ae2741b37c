#!/usr/bin/env bash
# Checks the README's two commands on a fresh minimal Debian 12 (issue 21): a debootstrap
# `minbase` bookworm root with only rustup's default toolchain added (no C compiler, nothing
# else from this machine), a clean clone of this repository's committed HEAD in /root/layerlet,
# entered as a container runtime would enter it, not as a bare chroot: its own mount and PID
# namespaces, pivot_root into the root, fresh /proc, /sys (this machine's cgroup hierarchies
# bound in), /dev bound from the host, /run a tmpfs; the host's network namespace is kept (the
# tests make their own network namespaces and serve registries on loopback). Inside, as root
# from /root/layerlet, it runs `./scripts/demo.sh` then `.ci/run`, as written.
#
# Usage (as root): scripts/fresh-debian-check.sh [ROOT]     ROOT defaults to /work/deb12
# An existing ROOT is reused (only the toolchain and the clone are refreshed), so apt packages
# installed by an earlier run stay installed; FRESH=1 deletes it and bootstraps a new one.
# Environment: LOGS (default ROOT-logs: STEP.log), STEPS (default "demo ci"; "tests" runs
# `cargo test --all-targets --no-fail-fast` to see every test binary past a failing one;
# "cmd" runs the command line in CMD, e.g. one test binary again),
# MIRROR (default http://deb.debian.org/debian). Every heavy step runs under nice -n 19.
# Exits non-zero when a step fails; the logs say which.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
root=$(realpath -m "${1:-/work/deb12}")
logs=${LOGS:-$root-logs}
steps=${STEPS:-demo ci}
mirror=${MIRROR:-http://deb.debian.org/debian}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
[ "$root" != / ] || { echo "refusing / as the root" >&2; exit 1; }
mkdir -p "$logs"

# 1. The minimal Debian 12 root.
if [ "${FRESH:-0}" = 1 ] && [ -e "$root" ]; then
  if findmnt -rn -o TARGET | grep -q "^$root\(/\|$\)"; then
    echo "$root still has mounts; not deleting it" >&2; exit 1
  fi
  rm -rf --one-file-system "$root"
fi
if [ ! -x "$root/usr/bin/apt-get" ]; then
  echo "== debootstrap --variant=minbase bookworm $root"
  nice -n 19 debootstrap --variant=minbase bookworm "$root" "$mirror" >"$logs/debootstrap.log" 2>&1 ||
    { tail -20 "$logs/debootstrap.log" >&2; exit 1; }
fi
# What any real machine or container runtime provides: name service for the network, and an
# /etc/hosts (debootstrap writes none, so without it `localhost` does not resolve). This
# machine's own CA certificates (a TLS-inspecting proxy's, for one) go where ca-certificates
# picks them up when the scripts install it (and are applied below to a reused root).
cp /etc/resolv.conf "$root/etc/resolv.conf"
mkdir -p "$root/usr/local/share/ca-certificates"
find /usr/local/share/ca-certificates -maxdepth 1 -name '*.crt' -exec cp {} "$root/usr/local/share/ca-certificates/" \;
[ -s "$root/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t%s\n' \
  "$(cat "$root/etc/hostname" 2>/dev/null || hostname)" >"$root/etc/hosts"

# rustup's default toolchain (default profile: rustc, cargo, rust-std, rustfmt, clippy), as
# rustup-init leaves it: ~/.rustup, ~/.cargo/{bin,env}, and ~/.profile sourcing the env file.
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
cargo_home=${CARGO_HOME:-$HOME/.cargo}
toolchain=$(rustup default | cut -d' ' -f1)
mkdir -p "$root/root/.rustup/toolchains" "$root/root/.cargo"
if [ ! -d "$root/root/.rustup/toolchains/$toolchain" ]; then
  echo "== copying rustup toolchain $toolchain"
  cp -a "$(realpath "$rustup_home/toolchains/$toolchain")" "$root/root/.rustup/toolchains/$toolchain"
fi
printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "default"\n\n[overrides]\n' "$toolchain" \
  >"$root/root/.rustup/settings.toml"
rm -rf "$root/root/.cargo/bin"
cp -a "$cargo_home/bin" "$cargo_home/env" "$root/root/.cargo/"
for rc in .profile .bashrc; do
  grep -qs 'cargo/env' "$root/root/$rc" || echo '. "$HOME/.cargo/env"' >>"$root/root/$rc"
done

# 2. A clean clone of the committed HEAD (a reused clone is reset to it; target/ is kept).
clone="$root/root/layerlet"
rev=$(git -C "$repo" rev-parse HEAD)
[ -d "$clone/.git" ] || git clone -q "$repo" "$clone"
git -C "$clone" fetch -q "$repo" "$rev"
git -C "$clone" checkout -q --detach "$rev"
git -C "$clone" reset -q --hard "$rev"
git -C "$clone" clean -qfdx -e /target
echo "== clone at $(git -C "$clone" log -1 --format='%h %s')"

# 3. Enter the root as a container runtime would; runs the bash command line $1 there as root.
enter() {
  # shellcheck disable=SC2016
  nice -n 19 unshare --mount --pid --fork --propagation private -- /bin/bash -c '
    set -euo pipefail
    root=$1
    mount --bind "$root" "$root"
    mount -t proc proc "$root/proc"
    mount -t sysfs sysfs "$root/sys"
    mount --rbind /sys/fs/cgroup "$root/sys/fs/cgroup"
    mount --rbind /dev "$root/dev"
    mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$root/run"
    mkdir -p "$root/oldroot"
    cd "$root"
    pivot_root . oldroot
    cd /
    umount -l /oldroot
    rmdir /oldroot
    # PID 1 reaps every orphan as the init of a machine does (a command run as PID 1 itself,
    # cargo say, would leave them zombies, and a killed process would never look gone).
    exec env -i HOME=/root USER=root LOGNAME=root SHELL=/bin/bash TERM=dumb \
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      /bin/bash -c '"'"'/bin/bash -lc "$1" & wait $!'"'"' init "$2"
  ' enter "$root" "$1"
}

# 4. The README's two commands, as written.
enter 'if command -v update-ca-certificates >/dev/null; then update-ca-certificates >/dev/null; fi'
status=0
for step in $steps; do
  case $step in
    demo) cmd='./scripts/demo.sh' ;;
    ci) cmd='.ci/run' ;;
    # Not a README command: every test binary, past the first failing one (after `ci`).
    tests) cmd='cargo test --all-targets --no-fail-fast' ;;
    cmd) cmd="bash -c $(printf %q "${CMD:?CMD: the command line to run in /root/layerlet}")" ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
  esac
  log="$logs/$step.log"
  echo "== $cmd  (log: $log)"
  start=$(date +%s)
  rc=0
  echo "\$ cd /root/layerlet && nice -n 19 $cmd" >"$log"
  enter "cd /root/layerlet && nice -n 19 $cmd" >>"$log" 2>&1 || rc=$?
  secs=$(($(date +%s) - start))
  echo "== $cmd: exit $rc after ${secs}s" | tee -a "$log"
  [ "$rc" = 0 ] || { status=1; tail -15 "$log" >&2; }
done
exit "$status"
