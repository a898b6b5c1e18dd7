{#
    The model adds up to the same totals as another relation: sum(sum_column) against the sum of
    compare_sum_column and, unless count_column is none, sum(count_column) against its row count.
    With `by` (a column both have), the totals are compared for each of its values: a value on one
    side only fails too. Catches rows lost or counted twice between silver and gold. Fails with one
    row per total (per value of `by`) that differs.
#}
{% test matches_totals(model, compare_model, sum_column='casos', count_column='registros', compare_sum_column='cantidad', by=none) %}
{%- set key = (by ~ ' as clave') if by is not none else "'todo' as clave" %}
with model_totals as (
    select
        {{ key }},
        coalesce(sum({{ sum_column }}), 0) as casos,
        {% if count_column is none %}0{% else %}coalesce(sum({{ count_column }}), 0){% endif %} as registros
    from {{ model }}
    {% if by is not none %}group by {{ by }}{% endif %}
),

expected_totals as (
    select
        {{ key }},
        coalesce(sum({{ compare_sum_column }}), 0) as casos,
        {% if count_column is none %}0{% else %}count(*){% endif %} as registros
    from {{ compare_model }}
    {% if by is not none %}group by {{ by }}{% endif %}
)

select
    coalesce(model_totals.clave, expected_totals.clave) as clave,
    model_totals.casos as model_casos,
    expected_totals.casos as expected_casos,
    model_totals.registros as model_registros,
    expected_totals.registros as expected_registros
from model_totals
full outer join expected_totals on model_totals.clave = expected_totals.clave
where model_totals.clave is null
   or expected_totals.clave is null
   or model_totals.casos <> expected_totals.casos
   or model_totals.registros <> expected_totals.registros
{% endtest %}
