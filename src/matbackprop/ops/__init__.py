"""Functional forms of the structured layers, built from the math core."""

from .ncut import gaussian_affinity, ncut_embedding, ncut_embedding_dense, projector_loss
from .o2p import region_weights, second_order_pooling, triu_vectorize
from .spd import bimap, spd_geodesic, spd_karcher_mean, spd_parallel_transport, spd_recenter
from .spd import spd_transport as spd_transport  # deprecated name of spd_recenter

__all__ = [
    "second_order_pooling",
    "triu_vectorize",
    "region_weights",
    "ncut_embedding",
    "ncut_embedding_dense",
    "gaussian_affinity",
    "projector_loss",
    "bimap",
    "spd_geodesic",
    "spd_karcher_mean",
    "spd_recenter",
    "spd_parallel_transport",
]
