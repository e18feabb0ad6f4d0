"""`gymforge catalog list|add|build`: the local dataset catalog from the command line.

The catalog lives in `<data dir>/catalog`; the data dir is `--data-dir` (when the main parser has it),
else $GYMFORGE_DATA_DIR, else ./.gymforge.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the catalog pulls in datasets/pandas: imported only when a catalog command runs
    from catalog import DatasetProfile
from gymforge.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    catalog = sub.add_parser("catalog", help="the local dataset catalog: list, add, build")
    commands = catalog.add_subparsers(dest="catalog_command", required=True, metavar="{list,add,build}")
    listing = commands.add_parser("list", help="list the datasets in the catalog")
    listing.add_argument("--json", action="store_true", help="print the profiles as JSON")
    listing.set_defaults(func=list_command)
    add = commands.add_parser(
        "add", help="add a datasets.save_to_disk directory, or parquet/CSV files + card.json"
    )
    add.add_argument("path", help="a directory saved with datasets, or parquet/CSV files with a card.json")
    add.add_argument("--name", help="the dataset's name in the catalog (default: from the card or the path)")
    add.add_argument("--replace", action="store_true", help="replace a dataset of the same name")
    add.set_defaults(func=add_command)
    build = commands.add_parser("build", help="build the built-in datasets (data shipped in pip packages)")
    build.add_argument("--force", action="store_true", help="rebuild datasets that are already built")
    build.set_defaults(func=build_command)


def catalog_root(args: argparse.Namespace) -> Path:
    return Path(args.settings.data_dir) / "catalog"


def list_command(args: argparse.Namespace) -> int:
    from catalog import LocalCatalog

    profiles = LocalCatalog(catalog_root(args)).list()
    if args.json:
        print(json.dumps([p.model_dump(mode="json") for p in profiles], indent=2, ensure_ascii=False))
        return 0
    if not profiles:
        print(
            f"no datasets in {catalog_root(args)}: run `gymforge catalog build` or `gymforge catalog add PATH`"
        )
        return 0
    for profile in profiles:
        print(summary_line(profile))
    return 0


def add_command(args: argparse.Namespace) -> int:
    from catalog import CatalogError, LocalCatalog

    try:
        profile = LocalCatalog(catalog_root(args)).add(Path(args.path), name=args.name, replace=args.replace)
    except CatalogError as exc:
        raise UserError(f"catalog add: {exc}") from exc
    print(f"added {summary_line(profile)}")
    return 0


def build_command(args: argparse.Namespace) -> int:
    from catalog import CatalogError, LocalCatalog
    from catalog.builtin import unavailable_builtins

    try:
        profiles = LocalCatalog(catalog_root(args)).build_builtin(force=args.force)
    except (CatalogError, OSError) as exc:
        raise UserError(f"cannot build the built-in catalog in {catalog_root(args)}: {exc}") from exc
    for profile in profiles:
        print(summary_line(profile))
    for name, reason in unavailable_builtins().items():
        print(f"skipped {name}: {reason}")
    print(f"{len(profiles)} built-in datasets in {catalog_root(args)}")
    return 0


def summary_line(profile: DatasetProfile) -> str:
    splits = " ".join(f"{name}={size}" for name, size in profile.split_sizes.items())
    return f"{profile.id:<18} {profile.task_type or '?':<24} {profile.source:<8} {splits}  {profile.license or 'license?'}"
