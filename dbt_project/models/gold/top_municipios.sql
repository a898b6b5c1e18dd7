-- The 20 municipalities with most cases each year; ties go to the lower municipality code.
with delitos as (
    select * from {{ ref('stg_delitos') }}
),

-- One name per code (a name can be spelt differently across rows), chosen deterministically.
municipality_names as (
    select
        cod_muni,
        max(municipio) as municipio,
        max(cod_depto) as cod_depto,
        max(departamento) as departamento
    from delitos
    group by cod_muni
),

cases_per_municipality_year as (
    select anio, cod_muni, cast(sum(cantidad) as bigint) as casos
    from delitos
    group by anio, cod_muni
),

ranked as (
    select
        anio,
        cod_muni,
        casos,
        row_number() over (partition by anio order by casos desc, cod_muni asc) as posicion
    from cases_per_municipality_year
)

select
    ranked.anio,
    cast(ranked.posicion as integer) as posicion,
    ranked.cod_muni,
    municipality_names.municipio,
    municipality_names.cod_depto,
    municipality_names.departamento,
    ranked.casos
from ranked
inner join municipality_names on ranked.cod_muni = municipality_names.cod_muni
where ranked.posicion <= 20
