#!/bin/sh
# Print the path of a Python >= 3.12 (nothing if there is none).
# Order: python3.13, python3.12, python3 on PATH; then interpreters pyenv has
# installed, newest first, even when no pyenv shim is active.
ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; }
for name in python3.13 python3.12 python3; do
  p=$(command -v "$name" 2>/dev/null) || continue
  if ok "$p"; then
    # A pyenv shim may stand for an interpreter that is not the active version: resolve it.
    real=$("$p" -c 'import sys; print(sys.executable)' 2>/dev/null)
    echo "${real:-$p}"; exit 0
  fi
done
root=${PYENV_ROOT:-$HOME/.pyenv}
for p in $(ls -d "$root"/versions/3.*/bin/python3 2>/dev/null | sort -t/ -k1 -V -r); do
  if ok "$p"; then echo "$p"; exit 0; fi
done
exit 0
