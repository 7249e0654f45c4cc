#!/usr/bin/env python3
"""Proves that Mecha's .proto files under Protos/ speak the same wire protocol as the
official Dapr Python SDK.

The SDK wheel (PyPI `dapr`) ships compiled descriptors for every Dapr runtime message and
service. This script compiles our own .proto files with protoc into a descriptor set and
compares the two, fact by fact:

  * services Dapr, AppCallback, AppCallbackHealthCheck and AppCallbackAlpha: every method,
    its request and response types, its streaming flags and its deprecation flag;
  * every message reachable from those methods (and every message the wheel declares in a
    dapr.* package): field numbers, names, types, labels, type names, oneof membership,
    proto3 `optional`, effective JSON names, packed/deprecated options, map entries,
    declaration order, message deprecation;
  * every enum reachable the same way: value names and numbers, in order.

Every difference is printed; the exit status is 1 when there is any, 0 when everything is
identical (the last line then reads "N services, M methods, K messages, E enums identical"),
and 2 when the check could not run (no protoc, no `dapr` package, protoc error).

Usage, from anywhere:

    python3 Tests/Compat/check_protos.py

It needs a Python with the SDK installed. When the interpreter running it has no `dapr`
package it re-runs itself with $PYTHON, then with the repository's test venv `.venv/bin/python`.
Create that venv once with:

    python3 -m venv .venv && .venv/bin/pip install "dapr[grpc]==1.19.0"

protoc comes from Debian's `protobuf-compiler` (and `libprotobuf-dev` for the well-known
types); when missing they are installed with apt-get if we are root. $PROTOC overrides the
protoc binary.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO / "Protos"
EXPECTED_SDK = "1.19.0"
SERVICES = [
    "dapr.proto.runtime.v1.Dapr",
    "dapr.proto.runtime.v1.AppCallback",
    "dapr.proto.runtime.v1.AppCallbackHealthCheck",
    "dapr.proto.runtime.v1.AppCallbackAlpha",
]
SETUP_ERROR = 2


def fail_setup(message: str) -> None:
    print(f"check_protos: {message}", file=sys.stderr)
    sys.exit(SETUP_ERROR)


# --------------------------------------------------------------------------------------------
# Environment: a Python with `dapr`, and protoc.
# --------------------------------------------------------------------------------------------

def ensure_dapr_importable() -> None:
    try:
        import dapr.proto.runtime.v1  # noqa: F401
        return
    except ImportError:
        pass
    if os.environ.get("CHECK_PROTOS_REEXEC"):
        fail_setup(f"{sys.executable} has no `dapr` package")
    candidates = []
    if os.environ.get("PYTHON"):
        candidates.append(os.environ["PYTHON"])
    candidates.append(str(REPO / ".venv" / "bin" / "python"))
    for python in candidates:
        if not (os.path.isfile(python) or shutil.which(python)):
            continue
        probe = subprocess.run([python, "-c", "import dapr.proto.runtime.v1"], capture_output=True)
        if probe.returncode == 0:
            env = dict(os.environ, CHECK_PROTOS_REEXEC="1")
            result = subprocess.run([python, str(Path(__file__).resolve()), *sys.argv[1:]], env=env)
            sys.exit(result.returncode)
    fail_setup(
        "no Python with the Dapr SDK found (tried this interpreter, $PYTHON, .venv/bin/python).\n"
        f'  create it: cd {REPO} && python3 -m venv .venv && '
        f'.venv/bin/pip install "dapr[grpc]=={EXPECTED_SDK}"'
    )


def apt_install(packages: list[str]) -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        fail_setup(f"missing Debian packages {packages}; install them: apt-get install {' '.join(packages)}")
    print(f"check_protos: installing {' '.join(packages)} with apt-get", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, stdout=subprocess.DEVNULL)
    done = subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        env=env, stdout=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        fail_setup(f"apt-get install {' '.join(packages)} failed")


def find_protoc() -> tuple[str, list[str]]:
    """Returns the protoc binary and the include directories for the well-known types."""
    if os.environ.get("PROTOC"):
        protoc = shutil.which(os.environ["PROTOC"])
        if not protoc:
            fail_setup(f"$PROTOC={os.environ['PROTOC']} is not an executable")
    else:
        protoc = shutil.which("protoc")
    if not protoc:
        apt_install(["protobuf-compiler", "libprotobuf-dev"])
        protoc = shutil.which("protoc")
        if not protoc:
            fail_setup("protoc still not found after installing protobuf-compiler")
    includes = []
    candidates = [Path(protoc).resolve().parent.parent / "include", Path("/usr/include"), Path("/usr/local/include")]
    wkt = next((d for d in candidates if (d / "google/protobuf/any.proto").is_file()), None)
    if wkt is None:
        apt_install(["libprotobuf-dev"])
        wkt = next((d for d in candidates if (d / "google/protobuf/any.proto").is_file()), None)
        if wkt is None:
            fail_setup("google/protobuf/*.proto not found; install libprotobuf-dev")
    includes.append(str(wkt))
    return protoc, includes


# --------------------------------------------------------------------------------------------
# Loading both sides as FileDescriptorProtos.
# --------------------------------------------------------------------------------------------

def load_ours():
    from google.protobuf import descriptor_pb2

    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    if not protos:
        fail_setup(f"no .proto files under {PROTO_ROOT}")
    protoc, includes = find_protoc()
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "ours.pb"
        command = [protoc, f"-I{PROTO_ROOT}", *[f"-I{d}" for d in includes],
                   "--include_imports", f"--descriptor_set_out={out}", *protos]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            fail_setup("protoc failed:\n" + done.stderr)
        if done.stderr.strip():
            print("protoc warnings:\n" + done.stderr.rstrip(), file=sys.stderr)
        fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    return list(fds.file), len(protos)


def load_wheel():
    from google.protobuf import descriptor_pb2
    import dapr.proto.runtime.v1 as runtime

    modules = ["dapr.proto.common.v1.common_pb2"] + [
        f"dapr.proto.runtime.v1.{info.name}"
        for info in pkgutil.iter_modules(runtime.__path__)
        if info.name.endswith("_pb2")
    ]
    files = {}

    def add(file_descriptor):
        if file_descriptor.name in files:
            return
        proto = descriptor_pb2.FileDescriptorProto()
        if getattr(file_descriptor, "serialized_pb", None):
            proto.ParseFromString(file_descriptor.serialized_pb)
        else:
            file_descriptor.CopyToProto(proto)
        files[file_descriptor.name] = proto
        for dependency in file_descriptor.dependencies:
            add(dependency)

    for name in modules:
        add(importlib.import_module(name).DESCRIPTOR)
    return list(files.values())


class Index:
    """Every message and enum of a descriptor set by full name (leading dot), plus services."""

    def __init__(self, files):
        self.messages = {}
        self.enums = {}
        self.services = {}
        self.file_of = {}
        for file in files:
            prefix = "." + file.package if file.package else ""
            for message in file.message_type:
                self._add_message(prefix, message, file.name)
            for enum in file.enum_type:
                self.enums[f"{prefix}.{enum.name}"] = enum
                self.file_of[f"{prefix}.{enum.name}"] = file.name
            for service in file.service:
                self.services[f"{prefix[1:]}.{service.name}"] = service

    def _add_message(self, prefix, message, file_name):
        name = f"{prefix}.{message.name}"
        self.messages[name] = message
        self.file_of[name] = file_name
        for nested in message.nested_type:
            self._add_message(name, nested, file_name)
        for enum in message.enum_type:
            self.enums[f"{name}.{enum.name}"] = enum
            self.file_of[f"{name}.{enum.name}"] = file_name


# --------------------------------------------------------------------------------------------
# Comparison.
# --------------------------------------------------------------------------------------------

TYPE_NAMES = {
    1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 6: "fixed64", 7: "fixed32",
    8: "bool", 9: "string", 10: "group", 11: "message", 12: "bytes", 13: "uint32", 14: "enum",
    15: "sfixed32", 16: "sfixed64", 17: "sint32", 18: "sint64",
}
LABEL_NAMES = {1: "optional", 2: "required", 3: "repeated"}


def default_json_name(name: str) -> str:
    """protoc's rule: drop underscores, upper-case the letter after each; nothing else changes."""
    out, upper_next = [], False
    for char in name:
        if char == "_":
            upper_next = True
        elif upper_next:
            out.append(char.upper())
            upper_next = False
        else:
            out.append(char)
    return "".join(out)


def json_name(field) -> str:
    return field.json_name if field.json_name else default_json_name(field.name)


def oneof_name(message, field):
    if not field.HasField("oneof_index"):
        return None
    return f"#{field.oneof_index} {message.oneof_decl[field.oneof_index].name}"


class Comparison:
    def __init__(self, wheel: Index, ours: Index):
        self.wheel = wheel
        self.ours = ours
        self.differences: list[str] = []
        self.messages_checked = 0
        self.enums_checked = 0
        self.methods_checked = 0

    def diff(self, text: str) -> None:
        self.differences.append(text)

    def check_services(self):
        pending = []
        for service_name in SERVICES:
            theirs = self.wheel.services.get(service_name)
            if theirs is None:
                self.diff(f"service {service_name}: not in the installed SDK (is it dapr {EXPECTED_SDK}?)")
                continue
            mine = self.ours.services.get(service_name)
            if mine is None:
                self.diff(f"service {service_name}: missing from Protos/")
                continue
            our_methods = {m.name: m for m in mine.method}
            for method in theirs.method:
                where = f"rpc {service_name}.{method.name}"
                pending += [method.input_type, method.output_type]
                self.methods_checked += 1
                ours = our_methods.pop(method.name, None)
                if ours is None:
                    self.diff(f"{where}: missing")
                    continue
                for attribute in ("input_type", "output_type", "client_streaming", "server_streaming"):
                    a, b = getattr(method, attribute), getattr(ours, attribute)
                    if a != b:
                        self.diff(f"{where}: {attribute} is {b!r} in ours, {a!r} in the SDK")
                if method.options.deprecated != ours.options.deprecated:
                    self.diff(f"{where}: deprecated is {ours.options.deprecated} in ours, "
                              f"{method.options.deprecated} in the SDK")
            for extra in our_methods:
                self.diff(f"rpc {service_name}.{extra}: in ours but not in the SDK")
            their_order = [m.name for m in theirs.method]
            our_order = [m.name for m in mine.method]
            if sorted(their_order) == sorted(our_order) and their_order != our_order:
                self.diff(f"service {service_name}: methods declared in a different order")
        for service_name in self.ours.services:
            if service_name not in SERVICES and service_name not in self.wheel.services:
                self.diff(f"service {service_name}: in ours but not in the SDK")
        return pending

    def check_types(self, roots):
        # Everything reachable from the services, plus everything the SDK declares under dapr.*.
        roots = list(roots) + [n for n in self.wheel.messages if n.startswith(".dapr.")]
        roots += [n for n in self.wheel.enums if n.startswith(".dapr.")]
        seen = set()
        stack = list(roots)
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            if name in self.wheel.enums:
                self.check_enum(name)
            elif name in self.wheel.messages:
                stack += self.check_message(name)
            else:
                self.diff(f"type {name}: referenced but not found in the SDK's descriptors")
        for name in self.ours.messages:
            if name.startswith(".dapr.") and name not in self.wheel.messages:
                self.diff(f"message {name}: in ours but not in the SDK")
        for name in self.ours.enums:
            if name.startswith(".dapr.") and name not in self.wheel.enums:
                self.diff(f"enum {name}: in ours but not in the SDK")

    def check_message(self, name):
        theirs = self.wheel.messages[name]
        self.messages_checked += 1
        referenced = [f.type_name for f in theirs.field if f.type_name]
        mine = self.ours.messages.get(name)
        if mine is None:
            self.diff(f"message {name}: missing")
            return referenced
        where = f"message {name[1:]}"
        for option in ("map_entry", "deprecated"):
            a, b = getattr(theirs.options, option), getattr(mine.options, option)
            if a != b:
                self.diff(f"{where}: option {option} is {b} in ours, {a} in the SDK")
        their_fields = {f.number: f for f in theirs.field}
        our_fields = {f.number: f for f in mine.field}
        for number in sorted(set(their_fields) | set(our_fields)):
            a, b = their_fields.get(number), our_fields.get(number)
            if a is None:
                self.diff(f"{where}: field {b.name} = {number} is in ours but not in the SDK")
                continue
            if b is None:
                self.diff(f"{where}: field {a.name} = {number} is missing")
                continue
            self.check_field(where, theirs, mine, a, b)
        if [f.name for f in theirs.field] != [f.name for f in mine.field]:
            if sorted(f.name for f in theirs.field) == sorted(f.name for f in mine.field):
                self.diff(f"{where}: fields declared in a different order: ours "
                          f"{[f.name for f in mine.field]}, SDK {[f.name for f in theirs.field]}")
        their_oneofs = [o.name for o in theirs.oneof_decl]
        our_oneofs = [o.name for o in mine.oneof_decl]
        if their_oneofs != our_oneofs:
            self.diff(f"{where}: oneofs are {our_oneofs} in ours, {their_oneofs} in the SDK")
        their_reserved = sorted((r.start, r.end) for r in theirs.reserved_range)
        our_reserved = sorted((r.start, r.end) for r in mine.reserved_range)
        if their_reserved != our_reserved or sorted(theirs.reserved_name) != sorted(mine.reserved_name):
            self.diff(f"{where}: reserved ranges/names differ")
        return referenced

    def check_field(self, where, their_message, our_message, a, b):
        at = f"{where}: field {a.number} ({a.name})"
        if a.name != b.name:
            self.diff(f"{at}: named {b.name!r} in ours")
        if a.type != b.type:
            self.diff(f"{at}: type {TYPE_NAMES.get(b.type)} in ours, {TYPE_NAMES.get(a.type)} in the SDK")
        if a.label != b.label:
            self.diff(f"{at}: label {LABEL_NAMES.get(b.label)} in ours, {LABEL_NAMES.get(a.label)} in the SDK")
        if a.type_name != b.type_name:
            self.diff(f"{at}: type name {b.type_name or '(none)'} in ours, "
                      f"{a.type_name or '(none)'} in the SDK")
        if a.proto3_optional != b.proto3_optional:
            self.diff(f"{at}: proto3 optional is {b.proto3_optional} in ours, {a.proto3_optional} in the SDK")
        oa, ob = oneof_name(their_message, a), oneof_name(our_message, b)
        if oa != ob:
            self.diff(f"{at}: oneof {ob} in ours, {oa} in the SDK")
        if json_name(a) != json_name(b):
            self.diff(f"{at}: JSON name {json_name(b)!r} in ours, {json_name(a)!r} in the SDK")
        if a.HasField("default_value") != b.HasField("default_value") or a.default_value != b.default_value:
            self.diff(f"{at}: default value differs")
        for option in ("deprecated", "packed"):
            has_a, has_b = a.options.HasField(option), b.options.HasField(option)
            if has_a != has_b or getattr(a.options, option) != getattr(b.options, option):
                self.diff(f"{at}: option {option} differs "
                          f"(ours {getattr(b.options, option) if has_b else 'unset'}, "
                          f"SDK {getattr(a.options, option) if has_a else 'unset'})")

    def check_enum(self, name):
        theirs = self.wheel.enums[name]
        self.enums_checked += 1
        mine = self.ours.enums.get(name)
        if mine is None:
            self.diff(f"enum {name}: missing")
            return
        a = [(v.name, v.number) for v in theirs.value]
        b = [(v.name, v.number) for v in mine.value]
        if a != b:
            self.diff(f"enum {name[1:]}: values {b} in ours, {a} in the SDK")
        if theirs.options.allow_alias != mine.options.allow_alias:
            self.diff(f"enum {name[1:]}: allow_alias differs")


def main() -> int:
    ensure_dapr_importable()
    try:
        from importlib.metadata import version
        sdk_version = version("dapr")
    except Exception:  # noqa: BLE001 - the version is informative only
        sdk_version = "unknown"
    if sdk_version != EXPECTED_SDK:
        print(f"check_protos: warning: comparing against dapr {sdk_version}, "
              f"the protos target {EXPECTED_SDK}", file=sys.stderr)

    our_files, proto_count = load_ours()
    comparison = Comparison(Index(load_wheel()), Index(our_files))
    roots = comparison.check_services()
    comparison.check_types(roots)

    for line in comparison.differences:
        print(line)
    if comparison.differences:
        print(f"{len(comparison.differences)} differences between Protos/ ({proto_count} files) "
              f"and the dapr {sdk_version} SDK")
        return 1
    services = sum(1 for s in SERVICES if s in comparison.ours.services)
    print(f"Protos/ ({proto_count} files) vs dapr {sdk_version} SDK: "
          f"{services} services, {comparison.methods_checked} methods, "
          f"{comparison.messages_checked} messages, {comparison.enums_checked} enums identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
