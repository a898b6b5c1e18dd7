{#
    The model adds up to the same totals as another relation: sum(sum_column) against the sum of
    compare_sum_column and, unless count_column is none, sum(count_column) against its row count.
    Catches rows lost or counted twice between silver and gold. Fails with one row if they differ.
#}
{% test matches_totals(model, compare_model, sum_column='casos', count_column='registros', compare_sum_column='cantidad') %}
with model_totals as (
    select
        coalesce(sum({{ sum_column }}), 0) as casos,
        {% if count_column is none %}0{% else %}coalesce(sum({{ count_column }}), 0){% endif %} as registros
    from {{ model }}
),

expected_totals as (
    select
        coalesce(sum({{ compare_sum_column }}), 0) as casos,
        {% if count_column is none %}0{% else %}count(*){% endif %} as registros
    from {{ compare_model }}
)

select
    model_totals.casos as model_casos,
    expected_totals.casos as expected_casos,
    model_totals.registros as model_registros,
    expected_totals.registros as expected_registros
from model_totals
cross join expected_totals
where model_totals.casos <> expected_totals.casos
   or model_totals.registros <> expected_totals.registros
{% endtest %}
