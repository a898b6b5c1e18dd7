{#
    The row history's helpers (models/silver/delitos_versiones.sql).
#}

{#- A row's content, without its id: two rows with the same content are the same record of the source, whatever
    :id it was published under (a wholesale re-publication gives every row a new one). Both engines give the same
    text for each value: dates as YYYY-MM-DD, integers without decimals. -#}
{% macro delitos_content_hash(alias) %}
    md5(concat_ws('|',
        {{ delitos_date_text(alias ~ '.fecha_hecho') }},
        {{ alias }}.cod_depto,
        {{ alias }}.departamento,
        {{ alias }}.cod_muni,
        {{ alias }}.municipio,
        {{ alias }}.descripcion_conducta,
        cast(cast({{ alias }}.cantidad as bigint) as varchar)))
{%- endmacro %}

{#- A date as YYYY-MM-DD text, whatever the session's settings: Snowflake's cast follows DATE_OUTPUT_FORMAT, and a
    changed format would make every row's content look changed. -#}
{% macro delitos_date_text(expression) %}
    {{ return(adapter.dispatch('delitos_date_text', 'delitos')(expression)) }}
{% endmacro %}

{% macro default__delitos_date_text(expression) -%}
    strftime({{ expression }}, '%Y-%m-%d')
{%- endmacro %}

{% macro snowflake__delitos_date_text(expression) -%}
    to_char({{ expression }}, 'YYYY-MM-DD')
{%- endmacro %}

{#- The changes that leave a row current after them, and those that end its validity. -#}
{% macro delitos_open_changes() %}('agregada', 'modificada', 'reidentificada'){% endmacro %}

{#- bronze.delitos_cargas, the load ledger written with bronze.delitos in the same transaction: one row per month
    and source version loaded. Reached through bronze.delitos's source, whose load writes it (one asset, one
    lineage edge: the ledger is not a table of its own in Dagster's graph). -#}
{% macro delitos_load_ledger() %}
    {{ return(source('bronze', 'delitos').incorporate(path={'identifier': 'delitos_cargas'})) }}
{% endmacro %}
