{#
    The type-2 history of every row the platform loaded: one row per version of a row id, valid from the source
    version at which it was read (valido_desde) until the source version that changed, removed or re-identified
    it (valido_hasta, null while it is current). A view over silver.delitos_versiones: always consistent with it
    (created when the history is published, macros/audit_publish.sql).
#}
{{ config(materialized='delitos_audited_view') }}

with cambios as (
    select
        versiones.*,
        lead(version) over (partition by row_id order by version) as siguiente_version,
        lead(cambio) over (partition by row_id order by version) as siguiente_cambio
    from {{ ref('delitos_versiones') }} as versiones
)

select
    row_id,
    mes,
    fecha_hecho,
    cod_depto,
    departamento,
    cod_muni,
    municipio,
    descripcion_conducta,
    cantidad,
    version as valido_desde,
    siguiente_version as valido_hasta,
    cambio as origen,
    siguiente_cambio as terminada_por,
    row_id_equivalente as row_id_anterior,
    siguiente_version is null as vigente
from cambios
where cambio in {{ delitos_open_changes() }}
