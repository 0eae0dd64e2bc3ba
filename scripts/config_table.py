"""Print the README's table of config keys, defaults and meanings from bot/config.py.

    python scripts/config_table.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.config import describe_keys  # noqa: E402


def main() -> None:
    print("| key | default | allowed | meaning |")
    print("|---|---|---|---|")
    for key, default, allowed, doc in describe_keys():
        print(f"| `{key}` | `{default}` | {allowed} | {doc.replace('|', chr(92) + '|')} |")


if __name__ == "__main__":
    main()
