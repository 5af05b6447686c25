module github.com/infrapilot/infrapilot/agent

go 1.26.8

require github.com/infrapilot/infrapilot/events v0.0.0

replace github.com/infrapilot/infrapilot/events => ../events
