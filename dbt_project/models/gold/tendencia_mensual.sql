-- Monthly cases over an unbroken calendar (months without cases count 0), with the month-over-month
-- change, a rolling 12-month total, and whether the month is still provisional (gold.madurez).
-- recursive: month_spine below refers to itself (the keyword covers the whole WITH list).
with recursive delitos as (
    select * from {{ ref('stg_delitos') }}
),

cases_per_month as (
    select mes, cast(sum(cantidad) as bigint) as casos
    from delitos
    group by mes
),

-- Every month from the first to the last with data, so that gaps show as zero, not as missing rows.
month_spine (mes, last_mes) as (
    select min(mes), max(mes)
    from cases_per_month
    having count(*) > 0
    union all
    select {{ add_months('mes', 1) }}, last_mes
    from month_spine
    where mes < last_mes
),

monthly as (
    select
        month_spine.mes,
        coalesce(cases_per_month.casos, 0) as casos
    from month_spine
    left join cases_per_month on month_spine.mes = cases_per_month.mes
),

with_previous as (
    select
        mes,
        casos,
        lag(casos) over (order by mes) as casos_mes_anterior,
        sum(casos) over (order by mes rows between 11 preceding and current row) as casos_12m
    from monthly
),

-- The age (months after its end) at which months typically hold 95% of their cases, and the source's latest
-- version: a month younger than that age at that version is provisional. No such age (no history yet): none is.
madurez_tipica as (
    select min(k) as k_completo
    from {{ ref('madurez') }}
    where proporcion_tipica >= 0.95
),

ahora as (
    select max(version) as version from {{ delitos_load_ledger() }}
)

select
    mes,
    casos,
    casos_mes_anterior,
    -- No percentage against an empty (or absent) previous month.
    case
        when casos_mes_anterior is null or casos_mes_anterior = 0 then null
        else cast(100.0 * (casos - casos_mes_anterior) / casos_mes_anterior as double)
    end as variacion_pct,
    cast(casos_12m as bigint) as casos_12m,
    coalesce({{ add_months('mes', 'madurez_tipica.k_completo + 1') }} > ahora.version, false) as provisional
from with_previous
cross join madurez_tipica
cross join ahora
