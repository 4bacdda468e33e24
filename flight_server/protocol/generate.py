"""Regenerates the committed *_pb2.py modules from the .proto files (needs grpcio-tools)."""

from pathlib import Path

from grpc_tools import protoc

HERE = Path(__file__).resolve().parent


def main() -> None:
    for proto in sorted(HERE.glob("*.proto")):
        code = protoc.main(["protoc", f"-I{HERE}", f"--python_out={HERE}", str(proto)])
        if code != 0:
            raise SystemExit(f"protoc failed for {proto.name}")
        print(f"generated {proto.stem}_pb2.py")


if __name__ == "__main__":
    main()
