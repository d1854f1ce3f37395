"""Regenerate gen/ from proto/: Python messages, .pyi stubs, gRPC stubs and the
descriptor set Envoy's transcoder loads; and envoy/envoy.example.yaml from the
default ingress settings. `--check` fails when either is stale."""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

from ingress.envoy import EXAMPLE_PATH, render_example

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto"
THIRD_PARTY = ROOT / "third_party" / "googleapis"
GEN = ROOT / "gen"
DESCRIPTOR = "descriptor.pb"
WKT = Path(grpc_tools.__file__).parent / "_proto"


def generate(out: Path) -> None:
    files = sorted(str(p.relative_to(PROTO)) for p in PROTO.rglob("*.proto"))
    includes = [f"-I{PROTO}", f"-I{THIRD_PARTY}", f"-I{WKT}"]
    outputs = [f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}"]
    if protoc.main(["protoc", *includes, *outputs, *files]) != 0:
        raise SystemExit("protoc failed (python)")
    # The transcoder needs every import in the set, and error details so that
    # google.rpc.BadRequest reaches HTTP callers.
    descriptor_inputs = [*files, "google/rpc/error_details.proto"]
    if (
        protoc.main(
            [
                "protoc",
                *includes,
                "--include_imports",
                "--include_source_info",
                f"--descriptor_set_out={out / DESCRIPTOR}",
                *descriptor_inputs,
            ]
        )
        != 0
    ):
        raise SystemExit("protoc failed (descriptor set)")
    for package_dir in {p.parent for p in out.rglob("*_pb2.py")}:
        d = package_dir
        while d != out:
            (d / "__init__.py").touch()
            d = d.parent


def differences(a: Path, b: Path) -> list[str]:
    cmp = filecmp.dircmp(a, b, ignore=["__pycache__"])
    out = [f"only in {Path(cmp.left).relative_to(a.parent)}: {n}" for n in cmp.left_only]
    out += [f"missing from gen/: {n}" for n in cmp.right_only]
    out += [f"stale: {n}" for n in cmp.diff_files]
    for name, sub in cmp.subdirs.items():
        out += [f"{name}/{line}" for line in differences(Path(sub.left), Path(sub.right))]
    # dircmp compares shallowly by stat; confirm content for the files it called equal.
    out += [
        f"stale: {n}"
        for n in cmp.same_files
        if (Path(cmp.left) / n).read_bytes() != (Path(cmp.right) / n).read_bytes()
    ]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if gen/ is not up to date")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "gen"
        fresh.mkdir()
        generate(fresh)
        example = render_example()
        if args.check:
            problems = differences(GEN, fresh) if GEN.exists() else ["gen/ does not exist"]
            if not EXAMPLE_PATH.exists() or EXAMPLE_PATH.read_text() != example:
                problems.append(f"stale: {EXAMPLE_PATH.relative_to(ROOT)}")
            if problems:
                print("gen/ is stale; run `make gen`:\n  " + "\n  ".join(problems), file=sys.stderr)
                return 1
            print("gen/ and the example Envoy configuration are up to date")
            return 0
        if GEN.exists():
            shutil.rmtree(GEN)
        shutil.copytree(fresh, GEN)
        EXAMPLE_PATH.write_text(example)
    print(f"regenerated {GEN.relative_to(ROOT)}/ and {EXAMPLE_PATH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
