"""KPI schemes: list and read versions (HR, supervisors for their lines), add a version (admin).

There is no update or delete: a change is a new version effective from a later period, so
a period already scored keeps the version that scored it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, status

from kpi_service.api.deps import KpiReader, Principal, audited
from kpi_service.api.score_models import SchemeSummary, SchemeVersionOut
from kpi_service.api.stores import RegistryDep
from kpi_service.scores.model import SchemeSpec, SchemeVersion
from kpi_service.scores.registry import SchemeConflict
from kpi_service.scores.service import check_scope

router = APIRouter(tags=["schemes"])

SchemePath = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$", max_length=64, description="Scheme.")
]


def out(v: SchemeVersion) -> SchemeVersionOut:
    return SchemeVersionOut(
        scheme=v.spec.scheme,
        version=v.version,
        effective_from=v.spec.effective_from,
        created_at=v.created_at,
        created_by=v.created_by,
        spec=v.spec,
    )


@router.get("/schemes", summary="KPI schemes and their versions")
def list_schemes(principal: KpiReader, registry: RegistryDep) -> list[SchemeSummary]:
    out_list = []
    for name in registry.names():
        versions = registry.versions(name)
        try:
            check_scope(principal, versions)
        except HTTPException:
            continue  # a supervisor sees only schemes confined to its lines
        out_list.append(
            SchemeSummary(
                scheme=name,
                period=versions[-1].spec.period,
                versions=[v.version for v in versions],
                in_force_from=[v.spec.effective_from for v in versions],
            )
        )
    return out_list


@router.get(
    "/schemes/{scheme}",
    summary="Every version of one scheme",
    responses={404: {"description": "No such scheme."}},
)
def scheme_versions(
    scheme: SchemePath, principal: KpiReader, registry: RegistryDep
) -> list[SchemeVersionOut]:
    versions = registry.versions(scheme)
    if not versions:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no scheme named {scheme!r}")
    check_scope(principal, versions)
    return [out(v) for v in versions]


@router.post(
    "/schemes",
    summary="Add a scheme version (admin); it takes effect from its effective_from",
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "The version would rewrite history (see the detail)."}},
)
def add_scheme_version(
    spec: SchemeSpec,
    principal: Annotated[Principal, Depends(audited("admin"))],
    registry: RegistryDep,
) -> SchemeVersionOut:
    try:
        return out(registry.add(spec, principal.name))
    except SchemeConflict as err:
        raise HTTPException(status.HTTP_409_CONFLICT, str(err)) from err
