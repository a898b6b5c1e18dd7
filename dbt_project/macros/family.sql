{#
    The family layer (models/family/): every Policía dataset of 4v6r-wu98's shape gets its silver from
    delitos_family_silver, and the cross-crime gold reads every silver through delitos_family_cases. The models that
    call them are written by `delitos prepare` from the dataset entries (delitos_platform/family_dbt.py).
#}

{#- One row per bronze.<slug> row, typed and cleaned: the family's shared columns (names trimmed and upper case), the
    calendar, and the dataset's own columns trimmed. Built for the run's window, audited and published like
    stg_delitos (`delitos_audited_window`, macros/audit_publish.sql). -#}
{#- `own_columns`: the dataset's own columns, name -> silver type (VARCHAR, BIGINT or DATE). -#}
{% macro delitos_family_silver(slug, own_columns={}) %}
    {%- set window_column = 'fecha_hecho' -%}
    {{ config(materialized='delitos_audited_window', unique_key='row_id', meta={'window_column': window_column}) }}
with bronze_rows as (
    {{ delitos_bronze_window(source('bronze', slug), window_column) }}
),

cleaned as (
    select
        row_id,
        cast(fecha_hecho as date) as fecha_hecho,
        {{ delitos_cleaned_place() }},
        {%- for column, data_type in own_columns.items() %}
        {% if data_type == 'VARCHAR' %}trim({{ column }}){% else %}cast({{ column }} as {{ data_type }}){% endif %} as {{ column }},
        {%- endfor %}
        cast(cantidad as bigint) as cantidad
    from bronze_rows
)

select
    row_id,
    fecha_hecho,
    cast(date_trunc('month', fecha_hecho) as date) as mes,
    cast(extract(year from fecha_hecho) as integer) as anio,
    cod_depto,
    departamento,
    cod_muni,
    municipio,
    {%- for column in own_columns %}
    {{ column }},
    {%- endfor %}
    cantidad
from cleaned
{% endmacro %}

{#- Every silver row of every dataset with its dataset's id and title: the rows the cross-crime gold counts.
    `datasets` lists {id, titulo, silver}: the dataset, its title and its silver model. A dataset whose silver has
    not been built yet on this warehouse (none of its months loaded) has no rows: the gold counts the others. -#}
{% macro delitos_family_cases(datasets) %}
    {%- set built = [] -%}
    {%- for dataset in datasets -%}
        {%- set relation = ref(dataset.silver) -%}
        {%- if not execute or adapter.get_relation(relation.database, relation.schema, relation.identifier) is not none -%}
            {%- do built.append((dataset, relation)) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- for dataset, relation in built %}
select
    cast('{{ dataset.id }}' as varchar) as dataset,
    cast('{{ dataset.titulo | replace("'", "''") }}' as varchar) as titulo,
    row_id,
    mes,
    cod_depto,
    cod_muni,
    cantidad
from {{ relation }}
{% if not loop.last %}union all{% endif %}
    {%- else %}
select
    cast(null as varchar) as dataset,
    cast(null as varchar) as titulo,
    cast(null as varchar) as row_id,
    cast(null as date) as mes,
    cast(null as varchar) as cod_depto,
    cast(null as varchar) as cod_muni,
    cast(null as bigint) as cantidad
where 1 = 0
    {%- endfor %}
{% endmacro %}

{#- The rows of a bronze table in the run's window, as every silver model of the family reads them. -#}
{% macro delitos_bronze_window(relation, window_column) %}
    select *
    from {{ relation }}
    where {{ delitos_window_predicate(window_column) }}
{%- endmacro %}

{#- The place of a row as silver writes it: codes trimmed, names trimmed and upper case (the source has stray spaces
    and lower case in its names). -#}
{% macro delitos_cleaned_place() -%}
        trim(cod_depto) as cod_depto,
        upper(trim(departamento)) as departamento,
        trim(cod_muni) as cod_muni,
        upper(trim(municipio)) as municipio
{%- endmacro %}
