"""The classifier's lazily loaded embedder: load errors reach the caller; a load never blocks shutdown."""

import pytest

from costmesh.services.classifier.lazy_embedder import LazyEmbedder


class Vectors:
    dims = 3

    async def embed_one(self, text):
        return [float(len(text)), 0.0, 1.0]

    async def aclose(self):
        pass


async def test_the_model_is_loaded_once_and_used():
    loads = []

    def factory():
        loads.append(1)
        return Vectors()

    embedder = LazyEmbedder(factory, "m", 3)
    assert await embedder.embed_one("abc") == [3.0, 0.0, 1.0]
    assert await embedder.embed_one("abcd") == [4.0, 0.0, 1.0]
    assert embedder.loaded and loads == [1]


async def test_a_failed_load_reaches_the_caller():
    def factory():
        raise OSError("model files missing")

    with pytest.raises(OSError, match="model files missing"):
        await LazyEmbedder(factory, "m", 3).embed_one("abc")


async def test_a_model_of_the_wrong_size_is_refused():
    class Wide(Vectors):
        dims = 5

    with pytest.raises(ValueError, match="5 dimensions"):
        await LazyEmbedder(Wide, "m", 3).embed_one("abc")
