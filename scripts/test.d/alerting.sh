# Prometheus tooling for the metrics, alert-rule and notification tests: promtool checks the
# textfile, the push and the rules; the Pushgateway and Alertmanager run on 127.0.0.1.
need_apt promtool:prometheus prometheus-pushgateway:prometheus-pushgateway \
         prometheus-alertmanager:prometheus-alertmanager
