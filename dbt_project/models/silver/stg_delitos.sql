{#
    One row per bronze row, typed and cleaned.

    Built for the run's window only (vars window_start/window_end, half-open on fecha_hecho: only bronze rows of
    the window are read), audited, then published (`delitos_audited_window`, macros/audit_publish.sql): the new rows
    are tested in a view of silver as it will be, and only when every test passed does ONE transaction delete the
    window and every row_id that comes back, and insert the new rows (macros/window_swap.sql). Rows deleted upstream
    therefore disappear, a row whose date moved into the window replaces its old copy, and a failed test or a
    failed run leaves the table as it was. Without vars the window is everything: the whole table is replaced.
#}
{%- set window_column = 'fecha_hecho' -%}
{{
    config(
        materialized='delitos_audited_window',
        unique_key='row_id',
        meta={'window_column': window_column},
    )
}}

with bronze_rows as (
    {{ delitos_bronze_window(source('bronze', 'delitos'), window_column) }}
),

cleaned as (
    select
        row_id,
        cast(fecha_hecho as date) as fecha_hecho,
        {{ delitos_cleaned_place() }},
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
