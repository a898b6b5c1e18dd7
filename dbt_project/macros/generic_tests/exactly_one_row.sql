{#- The model has exactly one row (a summary table). Fails with the actual row count. -#}
{% test exactly_one_row(model) %}
select count(*) as row_count
from {{ model }}
having count(*) <> 1
{% endtest %}
