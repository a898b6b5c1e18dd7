{#
    One row per bronze row, typed and cleaned.

    Incremental by window (vars window_start/window_end, half-open on fecha_hecho): only bronze
    rows of the window are read, and the `delitos_window_swap` strategy (macros/window_swap.sql)
    deletes the window and every row_id that comes back, then inserts the new rows, in one
    transaction. Rows deleted upstream therefore disappear, a row whose date moved into the window
    replaces its old copy, and a failed run leaves the table as it was. Without vars the window is
    everything: the whole table is replaced.
#}
{%- set window_column = 'fecha_hecho' -%}
{{
    config(
        materialized='incremental',
        incremental_strategy='delitos_window_swap',
        unique_key='row_id',
        meta={'window_column': window_column},
        on_schema_change='fail',
        tmp_relation_type='transient',
    )
}}
{#- tmp_relation_type is read by dbt-snowflake only (the new rows are staged in a transient table,
    visible to lineage, before the swap reads them twice); dbt-duckdb ignores it. -#}

with bronze_rows as (
    select *
    from {{ source('bronze', 'delitos') }}
    where {{ delitos_window_predicate(window_column) }}
),

cleaned as (
    select
        row_id,
        cast(fecha_hecho as date) as fecha_hecho,
        trim(cod_depto) as cod_depto,
        upper(trim(departamento)) as departamento,
        trim(cod_muni) as cod_muni,
        upper(trim(municipio)) as municipio,
        trim(descripcion_conducta) as conducta,
        -- The article code, e.g. '269I', from the text 'ARTICULO 269I. HURTO ...'.
        {{ regexp_group('upper(descripcion_conducta)', '(269[A-J])') }} as articulo,
        cast(cantidad as bigint) as cantidad
    from bronze_rows
),

with_calendar as (
    select
        *,
        cast(date_trunc('month', fecha_hecho) as date) as mes,
        cast(extract(year from fecha_hecho) as integer) as anio,
        cast(extract(quarter from fecha_hecho) as integer) as trimestre
    from cleaned
)

select
    row_id,
    fecha_hecho,
    mes,
    anio,
    trimestre,
    cod_depto,
    departamento,
    cod_muni,
    municipio,
    articulo,
    conducta,
    -- Category from the article code only: every article has its own name, none falls to 'OTRO'.
    case articulo
        when '269A' then 'ACCESO ABUSIVO'
        when '269B' then 'OBSTACULIZACION DE SISTEMA O RED'
        when '269C' then 'INTERCEPTACION DE DATOS'
        when '269D' then 'DAÑO INFORMATICO'
        when '269E' then 'SOFTWARE MALICIOSO'
        when '269F' then 'VIOLACION DE DATOS PERSONALES'
        when '269G' then 'SUPLANTACION DE SITIOS WEB'
        when '269I' then 'HURTO POR MEDIOS INFORMATICOS'
        when '269J' then 'TRANSFERENCIA NO CONSENTIDA DE ACTIVOS'
    end as categoria,
    cantidad
from with_calendar
