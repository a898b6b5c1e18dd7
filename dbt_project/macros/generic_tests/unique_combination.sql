{#
    The combination of `columns` is unique and none of them is null: the grain of a table.
    Fails with one row per duplicated (or partly null) key.
#}
{% test unique_combination(model, columns) %}
    {%- set key = columns | join(', ') %}
with keys as (
    select {{ key }}
    from {{ model }}
),

duplicated_keys as (
    select {{ key }}, count(*) as occurrences
    from keys
    group by {{ key }}
    having count(*) > 1
),

null_keys as (
    select {{ key }}, count(*) as occurrences
    from keys
    where {% for column in columns %}{{ column }} is null{% if not loop.last %} or {% endif %}{% endfor %}
    group by {{ key }}
)

select * from duplicated_keys
union all
select * from null_keys
{% endtest %}
