{#
    One name per code for gold (a department by cod_depto, a municipality by cod_muni), by one rule that a few
    hostile or misspelt rows cannot steer: the spelling most rows use, ties broken by the first spelling in
    alphabetical order. `max(name)` would let a single row spelt 'ZZ…' rename every report of its code.
#}
{% macro delitos_spelling_by_code(relation, code, name) %}
    select {{ code }}, {{ name }}
    from (
        select
            {{ code }},
            {{ name }},
            row_number() over (partition by {{ code }} order by count(*) desc, {{ name }} asc) as preferencia
        from {{ relation }}
        group by {{ code }}, {{ name }}
    ) as spellings
    where preferencia = 1
{% endmacro %}
