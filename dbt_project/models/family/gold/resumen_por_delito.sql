-- One row per configured crime: how many rows and cases its silver holds, over which months and municipalities.
select
    dataset,
    titulo,
    cast(count(*) as bigint) as registros,
    cast(sum(cantidad) as bigint) as casos,
    min(mes) as primer_mes,
    max(mes) as ultimo_mes,
    cast(count(distinct cod_muni) as bigint) as municipios
from {{ ref('familia_casos') }}
group by dataset, titulo
