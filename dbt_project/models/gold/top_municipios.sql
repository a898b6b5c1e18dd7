-- The 20 municipalities with most cases each year; ties go to the lower municipality code.
with delitos as (
    select * from {{ ref('stg_delitos') }}
),

-- One name per code (a name can be spelt differently across rows): the spelling most rows use, by the same
-- rule as gold.delitos_por_departamento (macros/names.sql).
municipality_names as (
    {{ delitos_spelling_by_code('delitos', 'cod_muni', 'municipio') }}
),

department_names as (
    {{ delitos_spelling_by_code('delitos', 'cod_depto', 'departamento') }}
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
    department_names.cod_depto,
    department_names.departamento,
    ranked.casos
from ranked
inner join municipality_names on ranked.cod_muni = municipality_names.cod_muni
-- cod_muni starts with its cod_depto (the lake quarantines a row where it does not).
inner join department_names on substr(ranked.cod_muni, 1, 2) = department_names.cod_depto
where ranked.posicion <= 20
