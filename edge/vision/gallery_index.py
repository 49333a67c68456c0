"""The gallery with the template index a configuration names (``[gallery] backend``).

The pure gallery (``edge.core.gallery``) searches whatever ``TemplateIndex`` it is
given; this is the one place that maps a backend name to an index, so faiss is
imported only when a faiss backend is asked for::

    gallery = make_gallery(engine.embedding_size, cfg.gallery.backend)
    gallery = make_gallery(128, "ivf", nlist=2000, nprobe=300)
"""

from __future__ import annotations

from typing import Literal

from edge.core.gallery import ExactIndex, Gallery, GalleryError, TemplateIndex, check_dim

Backend = Literal["exact", "int8", "ivf"]
BACKENDS: tuple[Backend, ...] = ("exact", "int8", "ivf")


def make_index(backend: str, dim: int, **options: float) -> TemplateIndex:
    """An empty index of ``dim`` dimensions for ``backend``.

    Raises:
        GalleryError: an unknown backend, or options it does not take.
    """
    if backend not in BACKENDS:
        raise GalleryError(f"unknown gallery backend {backend!r} (one of {', '.join(BACKENDS)})")
    if backend == "exact":
        if options:
            raise GalleryError(f"the exact backend takes no options, got {sorted(options)}")
        return ExactIndex(dim)
    from edge.vision.faiss_index import make_faiss_index  # noqa: PLC0415 (faiss only when asked)

    return make_faiss_index(backend, dim, **options)


def make_gallery(dim: int, backend: str = "exact", **options: float) -> Gallery:
    """An empty gallery searching a ``backend`` index (see :data:`BACKENDS`)."""
    return Gallery(dim, make_index(backend, check_dim(dim), **options))
