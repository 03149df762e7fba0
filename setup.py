"""Maps the top-level `services/` and `gateway/` folders into the `costmesh` namespace."""

from setuptools import find_packages, setup

PACKAGES = (
    find_packages(".", include=["costmesh", "costmesh.*"])
    + ["costmesh.services"]
    + [f"costmesh.services.{p}" for p in find_packages("services")]
    + ["costmesh.gateway"]
    + [f"costmesh.gateway.{p}" for p in find_packages("gateway")]
)

setup(packages=PACKAGES)
