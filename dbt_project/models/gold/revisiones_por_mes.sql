-- How each month changed across the source's versions: one row for its first load and one for each version
-- in which a row of it was added, removed or changed; none for versions that left it as it was. Each row gives
-- the month as it stood at that version and what changed against its previous version.
with cambios as (
    select * from {{ ref('delitos_versiones') }}
),

-- Each change's effect on the months it touches: a row that moved from one month to another leaves the first
-- and joins the second. A re-identified row (same content, new id) changes nothing.
efectos as (
    select mes, version, 1 as agregadas, 0 as eliminadas, 0 as modificadas
    from cambios where cambio = 'agregada' or (cambio = 'modificada' and mes <> mes_anterior)
    union all
    select mes, version, 0, 1, 0 from cambios where cambio = 'eliminada'
    union all
    select mes_anterior, version, 0, 1, 0 from cambios where cambio = 'modificada' and mes <> mes_anterior
    union all
    select mes, version, 0, 0, 1 from cambios where cambio = 'modificada' and mes = mes_anterior
),

por_version as (
    select
        mes,
        version,
        cast(sum(agregadas) as bigint) as filas_agregadas,
        cast(sum(eliminadas) as bigint) as filas_eliminadas,
        cast(sum(modificadas) as bigint) as filas_modificadas
    from efectos
    group by mes, version
),

-- The month as it stood at each of these versions: the history's rows valid then.
estado as (
    select
        por_version.mes,
        por_version.version,
        count(historial.row_id) as registros,
        coalesce(sum(historial.cantidad), 0) as casos
    from por_version
    left join {{ ref('delitos_historial') }} as historial
        on historial.mes = por_version.mes
        and historial.valido_desde <= por_version.version
        and (historial.valido_hasta is null or historial.valido_hasta > por_version.version)
    group by por_version.mes, por_version.version
)

select
    por_version.mes,
    por_version.version,
    cast(row_number() over (partition by por_version.mes order by por_version.version) as integer) as revision,
    cast(estado.registros as bigint) as registros,
    cast(estado.casos as bigint) as casos,
    por_version.filas_agregadas,
    por_version.filas_eliminadas,
    por_version.filas_modificadas
from por_version
inner join estado on por_version.mes = estado.mes and por_version.version = estado.version
