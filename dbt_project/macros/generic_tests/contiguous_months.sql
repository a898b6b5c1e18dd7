{#
    The month column has no gaps: from its first to its last month there is exactly one row per
    month, each on its first day. With distinct months, that holds iff the row count equals the
    number of months spanned.
#}
{% test contiguous_months(model, column_name) %}
with months as (
    select
        count(*) as month_rows,
        count(distinct {{ column_name }}) as distinct_months,
        count(case when extract(day from {{ column_name }}) <> 1 then 1 end) as not_first_days,
        min({{ column_name }}) as first_month,
        max({{ column_name }}) as last_month
    from {{ model }}
),

span as (
    select
        month_rows,
        distinct_months,
        not_first_days,
        (extract(year from last_month) - extract(year from first_month)) * 12
            + extract(month from last_month) - extract(month from first_month) + 1 as expected_months
    from months
    where month_rows > 0
)

select *
from span
where month_rows <> expected_months or distinct_months <> expected_months or not_first_days > 0
{% endtest %}
