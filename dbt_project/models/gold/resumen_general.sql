-- One row summarising the whole dataset.
with delitos as (
    select * from {{ ref('stg_delitos') }}
),

totals as (
    select
        cast(sum(cantidad) as bigint) as casos,
        cast(count(*) as bigint) as registros,
        cast(count(distinct cod_depto) as bigint) as departamentos,
        cast(count(distinct cod_muni) as bigint) as municipios,
        min(fecha_hecho) as primera_fecha,
        max(fecha_hecho) as ultima_fecha
    from delitos
),

cases_per_article as (
    select articulo, sum(cantidad) as casos
    from delitos
    group by articulo
),

-- The article with most cases; a tie goes to the first article code.
most_frequent_article as (
    select articulo
    from (
        select
            articulo,
            row_number() over (order by casos desc, articulo asc) as rank_by_cases
        from cases_per_article
    ) as ranked_articles
    where rank_by_cases = 1
)

select
    totals.casos,
    totals.registros,
    totals.departamentos,
    totals.municipios,
    totals.primera_fecha,
    totals.ultima_fecha,
    most_frequent_article.articulo as articulo_mas_frecuente
from totals
left join most_frequent_article on 1 = 1
