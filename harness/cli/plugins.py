"""``harness plugins``: the installed task, trait and decomposer plugins."""

from __future__ import annotations

import json


def add_parser(sub) -> None:
    plug = sub.add_parser("plugins", help="List the installed task, trait and decomposer plugins.")
    plug.add_argument("--kind", choices=["task", "trait", "decomposer"])
    plug.add_argument("--json", action="store_true")
    plug.set_defaults(handler=main)


def main(args, err) -> int:
    from rich.console import Console
    from rich.table import Table

    from harness.api.plugins import catalog

    cat = catalog()
    rows = []
    for kind in ([args.kind] if args.kind else ["task", "trait", "decomposer"]):
        for name in cat.names(kind):
            e = cat.get(kind, name)
            row = {"name": name, "kind": kind, "plugin": e.plugin, "module": e.module,
                   "distribution": e.distribution, "description": e.description}
            if kind == "task":
                row["abilities"] = list(e.obj.abilities)
                row["task_kind"] = e.obj.kind
            rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table("name", "kind", "from", "description")
    for r in rows:
        desc = r["description"] + (f" [{', '.join(r['abilities'])}]" if r.get("abilities") else "")
        table.add_row(r["name"], r["kind"], f"{r['module']}\n({r['distribution'] or 'not installed'})", desc)
    Console().print(table)
    return 0
