# Sourced by the write benchmarks: put the bench folder on a freshly made,
# journaled ext4 (a sparse image on a loop device, direct I/O to the image).
#
# Why: this machine's root file system is ext4 without a journal, where the
# kernel's inode allocator skips inodes deleted in the last 1–5 minutes
# (recently_deleted() in fs/ext4/ialloc.c, only without a journal), scanning
# past each of them. After any `rm -rf` of a few thousand files every create
# costs ~0.5 ms instead of ~35 µs: a plain folder ran 2,000 creates at 30,000
# files/s in a run's first round and 1,300–1,800 in every later one. Both the
# baseline and the mount's own files (packs, staging) pay it, so ratios said
# nothing. A fresh journaled ext4 gives 27,000–28,000 files/s every time
# (docs/write-bench.md, "The local folder's rate").
#
#   freshfs_mount DIR GIB   mount a fresh ext4 of GIB GiB at DIR (root only);
#                           returns 1, leaving DIR alone, when it cannot
#   freshfs_umount DIR      unmount it and remove its image
FRESHFS_DEV=
freshfs_mount() {
	local dir=$1 gib=$2 img=$1.img
	[ "${FRESH_FS:-1}" = 1 ] && [ "$(id -u)" = 0 ] || return 1
	command -v mkfs.ext4 >/dev/null && command -v losetup >/dev/null || return 1
	local free
	free=$(df --output=avail -B1G "$(dirname "$dir")" | tail -1)
	[ "$free" -gt "$gib" ] || { echo "freshfs: $gib GiB wanted, $free free: the bench runs on $(dirname "$dir")" >&2; return 1; }
	truncate -s "${gib}G" "$img"
	mkfs.ext4 -q -F "$img" || { rm -f "$img"; return 1; }
	FRESHFS_DEV=$(losetup -f --show --direct-io=on "$img" 2>/dev/null || losetup -f --show "$img") || { rm -f "$img"; return 1; }
	mount "$FRESHFS_DEV" "$dir" || { losetup -d "$FRESHFS_DEV"; rm -f "$img"; FRESHFS_DEV=; return 1; }
}
freshfs_umount() {
	local dir=$1
	[ -n "$FRESHFS_DEV" ] || return 0
	umount "$dir" 2>/dev/null || umount -l "$dir"
	losetup -d "$FRESHFS_DEV" 2>/dev/null || true
	rm -f "$dir.img"
	FRESHFS_DEV=
}
