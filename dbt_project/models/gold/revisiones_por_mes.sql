-- How each month changed across the source's versions: one row for its first load and one for each version
-- in which a row of it was added, removed or changed; none for versions that left it as it was. Each row gives
-- the month as it stood at that version and what changed against its previous version.
with cambios as (
    select * from {{ ref('delitos_versiones') }}
),

-- Each change's effect on the months it touches: rows added (+1) or removed (-1), cases gained or lost, and
-- whether it counts as an added, deleted or modified row. A row that moved from one month to another leaves the
-- first and joins the second. A re-identified row (same content, new id) leaves and re-joins the same month in
-- the same version: its effects cancel and it counts as no change.
efectos as (
    select mes, version, 1 as registros, cantidad as casos, 1 as agregadas, 0 as eliminadas, 0 as modificadas
    from cambios where cambio = 'agregada' or (cambio = 'modificada' and mes <> mes_anterior)
    union all
    select mes, version, 1, cantidad, 0, 0, 0 from cambios where cambio = 'reidentificada'
    union all
    select mes, version, -1, -cantidad_anterior, 0, 1, 0 from cambios where cambio = 'eliminada'
    union all
    select mes, version, -1, -cantidad_anterior, 0, 0, 0 from cambios where cambio = 'reemplazada'
    union all
    select mes_anterior, version, -1, -cantidad_anterior, 0, 1, 0
    from cambios where cambio = 'modificada' and mes <> mes_anterior
    union all
    select mes, version, 0, cantidad - cantidad_anterior, 0, 0, 1
    from cambios where cambio = 'modificada' and mes = mes_anterior
),

por_version as (
    select
        mes,
        version,
        sum(registros) as registros,
        sum(casos) as casos,
        sum(agregadas) as filas_agregadas,
        sum(eliminadas) as filas_eliminadas,
        sum(modificadas) as filas_modificadas
    from efectos
    group by mes, version
),

-- The month as it stood at each version: the running sum of what every version up to it changed.
acumulado as (
    select
        mes,
        version,
        sum(registros) over (partition by mes order by version rows unbounded preceding) as registros,
        sum(casos) over (partition by mes order by version rows unbounded preceding) as casos,
        filas_agregadas,
        filas_eliminadas,
        filas_modificadas
    from por_version
),

cambiadas as (
    select * from acumulado where filas_agregadas + filas_eliminadas + filas_modificadas > 0
)

select
    mes,
    version,
    cast(row_number() over (partition by mes order by version) as integer) as revision,
    cast(registros as bigint) as registros,
    cast(casos as bigint) as casos,
    cast(filas_agregadas as bigint) as filas_agregadas,
    cast(filas_eliminadas as bigint) as filas_eliminadas,
    cast(filas_modificadas as bigint) as filas_modificadas
from cambiadas
