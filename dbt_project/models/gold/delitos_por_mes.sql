-- Cases per month and article, with how widely they spread (distinct departments, municipalities).
with delitos as (
    select * from {{ ref('stg_delitos') }}
)

select
    mes,
    articulo,
    categoria,
    cast(sum(cantidad) as bigint) as casos,
    cast(count(*) as bigint) as registros,
    cast(count(distinct cod_depto) as bigint) as departamentos,
    cast(count(distinct cod_muni) as bigint) as municipios
from delitos
group by mes, articulo, categoria
