{#
    Every change of every row the platform loaded, dated by the source version at which it was read: the
    row history's ledger (append-only). silver.delitos_historial shows it as a type-2 history.

    A change is one of
      agregada        a row id seen for the first time (with its content),
      modificada      a row id seen again with other content (its month may have changed: mes_anterior),
      eliminada       a row id gone from the source: its validity ends (no content),
      reidentificada  a row id seen for the first time whose content is that of a row id that went away in the
                      same version (row_id_equivalente: that id) — a re-publication under new :ids, not a new row,
      reemplazada     the row id that went away then (row_id_equivalente: its new id).

    `version` is the source's rowsUpdatedAt when the row's month was read (bronze.delitos_cargas, written in the
    same transaction as bronze's load), never the time of this run.

    Incremental by window like stg_delitos: bronze's rows of the run's months are compared with the history's
    open versions. Re-running a version finds nothing new and adds nothing. `full_refresh: false`: bronze keeps
    only each month's latest state, so this table is the one place where past versions live; a full refresh
    leaves it as it is (see dbt_project/README.md for what a rebuild from bronze can and cannot give back).
#}
{{
    config(
        materialized='delitos_audited_incremental',
        full_refresh=false,
        on_schema_change='fail',
        tmp_relation_type='transient',
    )
}}
{#- tmp_relation_type is read by dbt-snowflake only (the new changes are staged in a transient table, not a
    temporary view, as stg_delitos does); dbt-duckdb ignores it. -#}

{#- A row id seen for the first time, as a change: the same columns in the first build and in later ones. -#}
{%- set agregada -%}
    row_id, version, 'agregada' as cambio, mes, cast(null as date) as mes_anterior,
    cast(null as varchar) as row_id_equivalente,
    fecha_hecho, cod_depto, departamento, cod_muni, municipio, descripcion_conducta, cantidad,
    cast(null as bigint) as cantidad_anterior, contenido
{%- endset %}

with cargas as (
    -- Each month of the window at the source version of its latest load: the version bronze now holds.
    select mes, max(version) as version
    from {{ delitos_load_ledger() }}
    where {{ delitos_window_predicate('mes') }}
    group by mes
),

leidas as (
    select
        bronze.row_id,
        cargas.version,
        bronze.mes,
        bronze.fecha_hecho,
        bronze.cod_depto,
        bronze.departamento,
        bronze.cod_muni,
        bronze.municipio,
        bronze.descripcion_conducta,
        cast(bronze.cantidad as bigint) as cantidad,
        {{ delitos_content_hash('bronze') }} as contenido
    from {{ source('bronze', 'delitos') }} as bronze
    inner join cargas on bronze.mes = cargas.mes
    where {{ delitos_window_predicate('bronze.mes') }}
),

{% if is_incremental() %}
-- Only the ids this run can change: read now, or open in one of the window's months.
candidatas as (
    select row_id from leidas
    union
    select row_id from {{ this }} where {{ delitos_window_predicate('mes') }}
),

ultimas as (
    select row_id, version, cambio, mes, cantidad, contenido
    from (
        select
            historia.*,
            row_number() over (partition by historia.row_id order by historia.version desc) as orden
        from {{ this }} as historia
        where historia.row_id in (select row_id from candidatas)
    ) as ordenadas
    where orden = 1
),

vigentes as (
    select row_id, version, mes, cantidad, contenido from ultimas where cambio in {{ delitos_open_changes() }}
),

modificadas as (
    select leidas.*, vigentes.mes as mes_anterior, vigentes.cantidad as cantidad_anterior
    from leidas
    inner join vigentes on leidas.row_id = vigentes.row_id
    where leidas.contenido <> vigentes.contenido and leidas.version > vigentes.version
),

-- Ids without an open version, and open ids gone from bronze: paired by content (the n-th of each content
-- with the n-th), a pair is one record re-published under a new id.
nuevas as (
    select
        leidas.*,
        row_number() over (partition by leidas.contenido order by leidas.row_id) as par
    from leidas
    where not exists (select 1 from vigentes where vigentes.row_id = leidas.row_id)
),

desaparecidas as (
    select
        vigentes.row_id,
        cargas.version,
        vigentes.mes,
        vigentes.cantidad,
        vigentes.contenido,
        row_number() over (partition by vigentes.contenido order by vigentes.row_id) as par
    from vigentes
    inner join cargas on vigentes.mes = cargas.mes
    where cargas.version > vigentes.version
        and not exists (
            select 1 from {{ source('bronze', 'delitos') }} as bronze where bronze.row_id = vigentes.row_id
        )
),

emparejadas as (
    select
        nuevas.row_id,
        nuevas.version,
        desaparecidas.row_id as row_id_anterior,
        desaparecidas.mes as mes_anterior
    from nuevas
    inner join desaparecidas on nuevas.contenido = desaparecidas.contenido and nuevas.par = desaparecidas.par
),

cambios as (
    select {{ agregada }}
    from nuevas
    where row_id not in (select row_id from emparejadas)

    union all

    select
        row_id, version, 'modificada', mes, mes_anterior, cast(null as varchar),
        fecha_hecho, cod_depto, departamento, cod_muni, municipio, descripcion_conducta, cantidad,
        cantidad_anterior, contenido
    from modificadas

    union all

    select
        nuevas.row_id, nuevas.version, 'reidentificada', nuevas.mes, emparejadas.mes_anterior,
        emparejadas.row_id_anterior,
        nuevas.fecha_hecho, nuevas.cod_depto, nuevas.departamento, nuevas.cod_muni, nuevas.municipio,
        nuevas.descripcion_conducta, nuevas.cantidad, cast(null as bigint), nuevas.contenido
    from nuevas
    inner join emparejadas on nuevas.row_id = emparejadas.row_id

    union all

    select
        desaparecidas.row_id, desaparecidas.version,
        case when emparejadas.row_id is null then 'eliminada' else 'reemplazada' end,
        desaparecidas.mes, desaparecidas.mes, emparejadas.row_id,
        cast(null as date), cast(null as varchar), cast(null as varchar), cast(null as varchar),
        cast(null as varchar), cast(null as varchar), cast(null as bigint), desaparecidas.cantidad,
        cast(null as varchar)
    from desaparecidas
    left join emparejadas on desaparecidas.row_id = emparejadas.row_id_anterior
)
{% else %}
-- The first build: every row is seen for the first time (nothing to compare or pair).
cambios as (
    select {{ agregada }}
    from leidas
)
{% endif %}

select
    row_id,
    cast(version as timestamp) as version,
    cast(cambio as varchar) as cambio,
    cast(mes as date) as mes,
    cast(mes_anterior as date) as mes_anterior,
    cast(row_id_equivalente as varchar) as row_id_equivalente,
    cast(fecha_hecho as date) as fecha_hecho,
    cod_depto,
    departamento,
    cod_muni,
    municipio,
    descripcion_conducta,
    cast(cantidad as bigint) as cantidad,
    cast(cantidad_anterior as bigint) as cantidad_anterior,
    contenido
from cambios
