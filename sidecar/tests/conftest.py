import os

# Any reach for a model hub must fail loudly, not hang or download.
os.environ["HF_HUB_OFFLINE"] = "1"

from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from modelhost.demo.factory import make_demo_models
from modelhost.engine.device import Device
from modelhost.engine.host import ModelHost
from modelhost.servicer import ModelHostServicer
from modelhost.v1 import modelhost_pb2_grpc


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    make_demo_models(out)
    return out


@pytest.fixture
def host() -> ModelHost:
    return ModelHost(Device("cpu"))


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=1)
    yield pool
    pool.shutdown(wait=True)


@pytest.fixture
async def stub(
    host: ModelHost, executor: ThreadPoolExecutor, tmp_path: Path
) -> AsyncIterator[modelhost_pb2_grpc.ModelHostStub]:
    """A real grpc.aio server on a unix socket, with a client stub."""
    server = grpc.aio.server()
    modelhost_pb2_grpc.add_ModelHostServicer_to_server(ModelHostServicer(host, executor), server)
    address = f"unix:{tmp_path}/host.sock"
    server.add_insecure_port(address)
    await server.start()
    async with grpc.aio.insecure_channel(address) as channel:
        yield modelhost_pb2_grpc.ModelHostStub(channel)
    await server.stop(None)
