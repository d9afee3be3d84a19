/**
 * The shell function `safe_dir DIR MODE`, for every directory root writes into on a target (keys, their records, the
 * activation's state). It succeeds when every directory from / to DIR is a real directory (no symbolic link) owned by
 * root and writable by no one else — so no other user can redirect a path root writes below it. A sticky directory
 * (/tmp) may be on the way: there only root moves root's entries. DIR itself must not be writable by others at all.
 * With MODE, missing directories are created (DIR with MODE, those above it 0755); without, a missing one is fine
 * (it would be created by root). Otherwise prints `unsafe PATH: why` on stderr and returns 1.
 */
export const SAFE_DIR_FUNCTION = String.raw`safe_dir() {
  sd_path=; sd_rest=${"$"}{1#/}
  while :; do
    sd_p=${"$"}{sd_path:-/}
    if [ -L "$sd_p" ]; then echo "unsafe $sd_p: it is a symbolic link (to $(readlink -- "$sd_p")); give the real path" >&2; return 1; fi
    if [ ! -e "$sd_p" ]; then
      [ -n "$2" ] || return 0
      if [ -z "$sd_rest" ]; then sd_m=$2; else sd_m=0755; fi
      mkdir -m "$sd_m" -- "$sd_p" 2>/dev/null || [ -d "$sd_p" ] || { echo "unsafe $sd_p: it cannot be created" >&2; return 1; }
    fi
    if [ -L "$sd_p" ] || [ ! -d "$sd_p" ]; then echo "unsafe $sd_p: it is not a directory" >&2; return 1; fi
    sd_uid=$(stat -c %u -- "$sd_p"); sd_mode=$(stat -c %a -- "$sd_p")
    if [ "$sd_uid" != 0 ]; then echo "unsafe $sd_p: it is owned by $(stat -c %U -- "$sd_p"), not root" >&2; return 1; fi
    if [ $((0$sd_mode & 022)) != 0 ] && { [ -z "$sd_rest" ] || [ $((0$sd_mode & 01000)) = 0 ]; }; then
      if [ $((0$sd_mode & 002)) != 0 ]; then sd_who=everyone; else sd_who="its group $(stat -c %G -- "$sd_p")"; fi
      echo "unsafe $sd_p: it is writable by $sd_who (mode $sd_mode)" >&2; return 1
    fi
    [ -n "$sd_rest" ] || return 0
    sd_path=$sd_path/${"$"}{sd_rest%%/*}
    case $sd_rest in */*) sd_rest=${"$"}{sd_rest#*/} ;; *) sd_rest= ;; esac
  done
}`;

/** The reasons `safe_dir` gave in `output` (its `unsafe PATH: why` lines), as "PATH: why". */
export function unsafeDirReasons(output: string): string[] {
  return output.split("\n").filter((line) => line.startsWith("unsafe ")).map((line) => line.slice("unsafe ".length));
}
