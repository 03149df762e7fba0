"""Maps the top-level `services/`, `gateway/` and `tooling/` folders into the `costmesh` namespace."""

from setuptools import find_packages, setup

PACKAGES = (
    find_packages(".", include=["costmesh", "costmesh.*"])
    + ["costmesh.services"]
    + [f"costmesh.services.{p}" for p in find_packages("services")]
    + ["costmesh.gateway"]
    + [f"costmesh.gateway.{p}" for p in find_packages("gateway")]
    + ["costmesh.tooling"]
    + [f"costmesh.tooling.{p}" for p in find_packages("tooling")]
)

setup(packages=PACKAGES)
