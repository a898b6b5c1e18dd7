{#
    The column's value starts with another column's value, e.g. a municipality code (DIVIPOLA,
    5 digits) starts with its department's code (2 digits).
#}
{% test starts_with_column(model, column_name, prefix_column) %}
select {{ column_name }}, {{ prefix_column }}
from {{ model }}
where {{ column_name }} is null
   or {{ prefix_column }} is null
   or substr({{ column_name }}, 1, length({{ prefix_column }})) <> {{ prefix_column }}
{% endtest %}
