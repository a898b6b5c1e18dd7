{#
    One row per bronze row, typed and cleaned.

    Incremental by window (vars window_start/window_end, half-open on fecha_hecho): only bronze
    rows of the window are read, the pre-hook deletes the window from this table, and
    delete+insert writes them back. Rows deleted upstream therefore disappear, and unique_key
    row_id also removes a row whose date moved into the window from elsewhere. Without vars the
    window is everything: the whole table is replaced.
#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='row_id',
        on_schema_change='fail',
        pre_hook="{{ delitos_delete_window('fecha_hecho') }}",
        tmp_relation_type='transient',
    )
}}
{#- tmp_relation_type is read by dbt-snowflake only (its delete+insert stages rows in a transient
    table, visible to lineage); dbt-duckdb ignores it. -#}

with bronze_rows as (
    select *
    from {{ source('bronze', 'delitos') }}
    where {{ delitos_window_predicate('fecha_hecho') }}
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
