"""`prunebench data`: list, inspect and fetch data sets."""

from __future__ import annotations

import argparse
import dataclasses
import json

from prunebench.commands.options import add_data_dir
from prunebench.commands import argtypes
from prunebench.limits import bounds
from prunebench.data import NORMS, dataset_info, fetch, list_datasets, load
from prunebench.data.imagefolder import FolderImages, resize_size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    sub.add_parser("list", help="list the known data sets", description="List the known data sets.")

    info = sub.add_parser(
        "info", help="sizes, splits, shape, normalisation and file location of a data set",
        description="Load a data set and show its sizes, split sizes, classes, image shape, "
        "normalisation statistics and where its files were found.",
    )
    info.add_argument("name", choices=list_datasets(), metavar="NAME", help="data set: " + ", ".join(list_datasets()))
    add_data_dir(info)
    info.add_argument("--val-size", type=argtypes.COUNT, metavar="N",
                      help="validation images carved from the training set (default: per data set; 0 = none)")
    info.add_argument("--train-subset", type=argtypes.COUNT, metavar="N", help="keep only N class-balanced training images")
    info.add_argument("--split-seed", type=argtypes.SEED, default=0, metavar="S",
                      help=f"seed of the validation split ({bounds('seed')}; default: 0)")
    info.add_argument("--norm", metavar="NAME", help="named normalisation statistics (default: the data set's first)")
    info.add_argument("--classes", type=argtypes.COUNT, metavar="N", help="image folders: only the first N classes")
    info.add_argument("--input-size", type=argtypes.COUNT, metavar="S", help="image folders: the crop (default 224)")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")

    fetch_p = sub.add_parser(
        "fetch", help="make sure a data set is present (install or download it if needed)",
        description="Make sure a data set is present: look in --data-dir, $PRUNEBENCH_DATA and the user "
        "cache (and the Debian package for fashion-mnist), else install or download it with checksum verification.",
    )
    fetch_p.add_argument("name", choices=list_datasets(), metavar="NAME", help="data set: " + ", ".join(list_datasets()))
    add_data_dir(fetch_p)


def _fmt(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4f}" for v in values) + ")"


def _list() -> int:
    for name in list_datasets():
        info = dataset_info(name)
        shape = f"{info.in_channels}x{info.input_size}x{info.input_size}"
        print(f"{name:14} {info.num_classes:4} classes  {shape:8}  train {info.train_size:6}  test {info.test_size:6}  "
              f"norms: {', '.join(NORMS[name])}")
    return 0


def _info(args: argparse.Namespace) -> int:
    s = load(args.name, val_size=args.val_size, train_subset=args.train_subset,
             split_seed=args.split_seed, data_dir=args.data_dir, norm=args.norm,
             classes=args.classes, input_size=args.input_size)
    facts = {
        **dataclasses.asdict(s.info),
        "image_shape": list(s.train_x.shape[1:]),
        "splits": {"train": len(s.train_y), "val": len(s.val_y), "test": len(s.test_y)},
        "split_seed": args.split_seed,
        "split_hash": s.split_hash,
        "source": s.source,
    }
    if args.json:
        print(json.dumps(facts, indent=2))
        return 0
    i = s.info
    print(f"data set       {i.name}")
    print(f"found in       {s.source}")
    print(f"official sizes train {i.train_size}, test {i.test_size}")
    print(f"splits         train {len(s.train_y)}, val {len(s.val_y)}, test {len(s.test_y)} "
          f"(split seed {args.split_seed}, hash {s.split_hash})")
    print(f"classes        {i.num_classes}")
    print(f"image shape    {' x '.join(str(d) for d in s.train_x.shape[1:])} (uint8{', decoded from files' if isinstance(s.train_x, FolderImages) else ''})")
    print(f"normalisation  {i.norm}: mean {_fmt(i.mean)}, std {_fmt(i.std)}")
    if isinstance(s.train_x, FolderImages):
        print(f"augmentation   random-resized crop {i.input_size} + flip; eval: resize {resize_size(i.input_size)}, "
              f"centre crop {i.input_size} (data/imagefolder.py)")
    else:
        print(f"augmentation   pad-crop {i.pad} px, flip {'on' if i.flip else 'off'}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.data_command == "list":
        return _list()
    if args.data_command == "info":
        return _info(args)
    print(f"{args.name}: present in {fetch(args.name, args.data_dir)}")
    return 0
