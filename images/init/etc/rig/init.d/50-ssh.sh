#!/bin/sh
# rig's ssh transport, guest side (see rig/src/guest/ssh/mod.rs). Runs before RIG-READY, sourced in
# a subshell of /init.
#
# Only when rig asked for ssh: `rig.ssh_key=<type>:<base64>` on the kernel command line (installed
# as root's authorized key), or a per-run /root/.ssh/authorized_keys already in the initramfs
# (otherwise it returns before its first fork). Then: mount /dev/pts, generate a fresh ed25519
# host key, start dropbear on port 22 (public key logins only), and once it listens print exactly
# one line on the console for rig to pin:
#   RIG-SSH-HOSTKEY <type> <base64>
# On failure print `RIG-SSH-ERROR <reason>` instead (rig quotes it) and exit 0: the command
# shell on hvc0 stays usable. dropbear's own log goes to /run/rig-ssh/dropbear.log.
# RIG_SSH_PORT (default 22) exists for rig's host-side test of this hook (rig/tests/ssh_host.rs).

err() {
	echo "RIG-SSH-ERROR $*"
	exit 0
}

key=""
read -r cmdline </proc/cmdline
for word in $cmdline; do
	case "$word" in
	rig.ssh_key=*) key=${word#rig.ssh_key=} ;;
	esac
done

if [ -z "$key" ] && [ ! -s /root/.ssh/authorized_keys ]; then
	exit 0 # ssh not requested
fi
umask 077
mkdir -p /root/.ssh /dev/pts
[ -e /dev/pts/ptmx ] || mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts 2>/dev/null
# dropbear refuses keys whose file or parent directories others can write.
chmod go-w /root
chmod 700 /root/.ssh
if [ -n "$key" ]; then
	case "$key" in
	*:*) ;;
	*) err "malformed rig.ssh_key (want <type>:<base64>)" ;;
	esac
	echo "${key%%:*} ${key#*:} rig" >/root/.ssh/authorized_keys
fi
chmod 600 /root/.ssh/authorized_keys

command -v dropbear >/dev/null 2>&1 || err "dropbear not found in the guest image (Debian package dropbear-bin)"
command -v dropbearkey >/dev/null 2>&1 || err "dropbearkey not found in the guest image"

dir=/run/rig-ssh
mkdir -p "$dir"
hostkey=$dir/ssh_host_ed25519_key
rm -f "$hostkey" "$dir/dropbear.pid"
dropbearkey -t ed25519 -f "$hostkey" >"$dir/dropbearkey.log" 2>&1 ||
	err "dropbearkey failed: $(tail -n 1 "$dir/dropbearkey.log")"
set -- $(dropbearkey -y -f "$hostkey" 2>/dev/null | grep '^ssh-')
[ -n "$2" ] || err "cannot read the public half of $hostkey"
type=$1 blob=$2

# -F: stay a background job of this hook so -E logging keeps its file (a daemonizing dropbear
# closes stderr); -s: keys only; -P: /var/run may not exist in this rootfs.
dropbear -F -E -s -r "$hostkey" -p "${RIG_SSH_PORT:-22}" -P "$dir/dropbear.pid" \
	</dev/null >>"$dir/dropbear.log" 2>&1 &

# dropbear writes its pid file after it bound the port.
tries=0
while [ ! -s "$dir/dropbear.pid" ]; do
	tries=$((tries + 1))
	[ "$tries" -le 300 ] || err "dropbear did not start within 30s: $(tail -n 2 "$dir/dropbear.log" | tr '\n' ' ')"
	kill -0 $! 2>/dev/null || err "dropbear exited: $(tail -n 2 "$dir/dropbear.log" | tr '\n' ' ')"
	sleep 0.1
done

echo "RIG-SSH-HOSTKEY $type $blob"
