-- Cases per dataset, month and municipality, every configured crime side by side (models/family/gold/schema.yml).
select
    dataset,
    mes,
    cod_depto,
    cod_muni,
    cast(sum(cantidad) as bigint) as casos
from {{ ref('familia_casos') }}
group by dataset, mes, cod_depto, cod_muni
