"""Reports (巡检日报, 周报, 月报, 季度考核, 半年报, 年报): the document model, its XLSX and PDF renderings,
the reports directory with retention, the schedule, and delivery to WeCom groups and by e-mail.

The content builders (monitor.reports.content, one per report type, on monitor.assess's figures)
make a `document.Report`; everything else here works on that document alone:

    report = Report(kind="daily", title=…, period=Period(label, start_ns, end_ns), …, parts=(…))
    published = await publish(report, ReportStore(cfg.directory, cfg.keep_days), cfg.formats_for("daily"),
                              wecom=wecom_routes(cfg, notify.routes), email=cfg.delivery.email,
                              pdf_max_rows=cfg.pdf_max_rows)
    for job in due(now_ns, store.last_runs(), cfg.schedule, timezone, cfg.catch_up): …

Modules: content (the builders of the six report types and the gathering of their facts, on
monitor.assess), document (the model), text (words and value formats shared by every rendering),
xlsx, pdf and charts (WeasyPrint, matplotlib: imported only where a PDF is made), render (in a
child process), store, schedule, config (config.yaml `reports`), delivery (WeCom robot file
messages, e-mail), publish, service (the schedule in the daemon).
"""
