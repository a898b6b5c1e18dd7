-- How complete a month was k months after its end: the share of its current casos already known then, and the
-- typical share at k over every month observed at k. Known "then" means in the latest source version at or
-- before the month's end + k months (gold.revisiones_por_mes); the platform cannot know what it did not read,
-- so a k before the month's first load has no share. k runs from 0 to var('madurez_meses') (default 24) and
-- never past the source's latest version.
-- recursive: k_meses below refers to itself (the keyword covers the whole WITH list).
with recursive revisiones as (
    select mes, version, casos from {{ ref('revisiones_por_mes') }}
),

ahora as (
    select max(version) as version from {{ delitos_load_ledger() }}
),

k_meses (k) as (
    select 0
    union all
    select k + 1 from k_meses where k < {{ var('madurez_meses', 24) }}
),

actuales as (
    select mes, casos as casos_actuales
    from (
        select mes, casos, row_number() over (partition by mes order by version desc) as orden
        from revisiones
    ) as ordenadas
    where orden = 1
),

cortes as (
    select
        actuales.mes,
        k_meses.k,
        cast({{ add_months('actuales.mes', 'k_meses.k + 1') }} as timestamp) as corte,
        actuales.casos_actuales
    from actuales
    cross join k_meses
    cross join ahora
    where {{ add_months('actuales.mes', 'k_meses.k + 1') }} <= ahora.version
),

conocidos as (
    select mes, k, casos
    from (
        select
            cortes.mes,
            cortes.k,
            revisiones.casos,
            row_number() over (partition by cortes.mes, cortes.k order by revisiones.version desc) as orden
        from cortes
        inner join revisiones on revisiones.mes = cortes.mes and revisiones.version <= cortes.corte
    ) as ordenadas
    where orden = 1
),

proporciones as (
    select
        cortes.mes,
        cortes.k,
        cortes.corte,
        conocidos.casos as casos_conocidos,
        cortes.casos_actuales,
        case
            when cortes.casos_actuales = 0 then null
            else cast(conocidos.casos as double) / cortes.casos_actuales
        end as proporcion
    from cortes
    left join conocidos on cortes.mes = conocidos.mes and cortes.k = conocidos.k
),

tipicas as (
    select k, median(proporcion) as proporcion_tipica, count(proporcion) as meses_observados
    from proporciones
    group by k
)

select
    proporciones.mes,
    cast(proporciones.k as integer) as k,
    cast(proporciones.corte as timestamp) as corte,
    cast(proporciones.casos_conocidos as bigint) as casos_conocidos,
    cast(proporciones.casos_actuales as bigint) as casos_actuales,
    cast(proporciones.proporcion as double) as proporcion,
    cast(tipicas.proporcion_tipica as double) as proporcion_tipica,
    cast(tipicas.meses_observados as bigint) as meses_observados
from proporciones
inner join tipicas on proporciones.k = tipicas.k
