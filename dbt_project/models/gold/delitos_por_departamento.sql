-- Cases per year, department and article, with the first and last date they occurred.
with delitos as (
    select * from {{ ref('stg_delitos') }}
),

-- A department's name can be spelt differently across rows: the spelling most rows use (macros/names.sql).
department_names as (
    {{ delitos_spelling_by_code('delitos', 'cod_depto', 'departamento') }}
)

select
    delitos.anio,
    delitos.cod_depto,
    delitos.articulo,
    department_names.departamento,
    cast(sum(delitos.cantidad) as bigint) as casos,
    cast(count(*) as bigint) as registros,
    cast(count(distinct delitos.cod_muni) as bigint) as municipios,
    min(delitos.fecha_hecho) as primera_fecha,
    max(delitos.fecha_hecho) as ultima_fecha
from delitos
inner join department_names on delitos.cod_depto = department_names.cod_depto
group by delitos.anio, delitos.cod_depto, delitos.articulo, department_names.departamento
